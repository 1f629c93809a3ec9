"""Everything that runs: storage, codec, the worker handler, backends and the driver."""
