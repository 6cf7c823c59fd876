// sorted-btree is CommonJS with `exports.default = BTree`: under Node's ESM loader the default
// import is the exports object, so the class is its `.default`. One place knows this.
import sortedBtree from 'sorted-btree';

export const BTree = sortedBtree.default;
export type BTree<K, V> = import('sorted-btree').default<K, V>;
