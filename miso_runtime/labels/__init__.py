"""Labels of EEG moments: their store-facing service and the offline text embedder that finds them by meaning."""
