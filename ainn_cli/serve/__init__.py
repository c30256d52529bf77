"""`ainn serve`: a local web page to convert, listen A/B, compare and read strength (the `web` extra).

    command   ServeOptions, run_serve: bind, load the model once, run uvicorn, clean up on Ctrl-C or SIGTERM
    app       the Starlette app: the page (page/, package data) and its JSON API
    service   the page's requests checked as `ainn convert` checks its options, and queued
    jobs      one conversion at a time per process: a queue served by one worker thread
    uploads   uploads streamed under a byte cap, checked, decoded and deleted; kept in memory by random id
    views     results, readings and mel/F0 pictures as the page's JSON

Nothing here is imported by `ainn --help`; starlette and uvicorn are imported only by `ainn serve`.
"""
