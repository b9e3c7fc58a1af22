"""Media on the server: files stored by content (:mod:`.blobs`), uploads, downloads and
sticker sets built on them."""
