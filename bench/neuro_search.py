"""EEG search benchmark, all parts in one run (issue 13); each part prints its own anchors.

1. the built-in encoder against scipy's Welch alone (``bench/neuro_encoder.py``);
2. 1,000,000 stored vectors: our Annoy index against exact numpy search and hnswlib
   (``bench/vector_search.py``);
3. a one-hour range search through the runtime, and its stream's first result;
4. UMAP of 10,000 epochs through the runtime against umap-learn called directly;
5. live latency from an epoch's end to its ``EegEmbedding`` event
   (3-5: ``bench/neuro_runtime.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import neuro_encoder, neuro_runtime, vector_search  # noqa: E402


def main() -> int:
    print("=" * 100)
    print("1. the built-in encoder")
    neuro_encoder.main()
    print("=" * 100)
    print("2. the vector index")
    status = vector_search.main(["--sizes", "1000000"])
    print("=" * 100)
    neuro_runtime.main([])
    return status


if __name__ == "__main__":
    sys.exit(main())
