"""EEG similarity search: Annoy index files, exact numpy search and the search service."""
