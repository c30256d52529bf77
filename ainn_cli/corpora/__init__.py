"""`ainn data`: download an official speech corpus and convert it to the training layout.

    sources.py      where each archive lives, its size and checksum (cited)
    download.py     HTTP download with progress, resume (Range) and checksum
    archive.py      reading zip and tar members safely (no paths from the archive, size caps)
    layout.py       decode, downmix and resample to mono 16-bit FLAC at 22050 Hz; manifest.csv
    ravdess.py      RAVDESS speech -> Actor_XX/NAME.flac + manifest.csv
    librispeech.py  LibriSpeech subsets -> READER/UTT.flac + manifest.csv (with transcripts)
"""
