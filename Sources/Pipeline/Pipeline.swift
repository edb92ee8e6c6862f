// Pipeline module: manifests, spool, jobs, checkpoints, daemon.
