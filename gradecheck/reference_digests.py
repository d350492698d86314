"""SHA-256 of the Keras reference files; scripts/make_keras_reference.py writes it."""

DIGESTS = {
    "brnn": "155d27b18d077e8a24ef3ebc820ef73576f7d456de57f24cb6711feb9a160899",
    "gru": "6df403818fac045d54c5500e45c550671e266310c53610d9444f8da77cead558",
    "lstm": "2cdf4f2934a299e204ea3f99de48a43ed13e31c385a6eb1d2bce9caf43d5f2b1",
}
