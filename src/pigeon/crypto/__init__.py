"""End-to-end crypto on vodozemac (issue 9): this package only calls vodozemac, argon2-cffi
and ``cryptography``; it implements no primitive."""
