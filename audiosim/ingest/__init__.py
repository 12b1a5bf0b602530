"""ingest: discover (files, folders, lists of paths), ingest (one file to features + catalogue row; prune), summary."""
