// Placeholder entry: replaced by the agent CLI.
console.log(`trellis (node ${process.version})`);
