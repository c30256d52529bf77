"""One plain function per `ainn` command, each taking its frozen options: resolve inputs, call the library,
print results. `cli.py` only builds the options and imports the one module its command needs; torch and the
models are imported inside the functions, once nothing is left to refuse without them.

    convert.py    ainn convert (a file, a folder, a --pairs list)   converter.py  the conversion loop and progress
    strength.py   ainn strength (readings, plots)                   info.py       ainn info, ainn export
    train.py      ainn train, ainn evaluate                         data.py       ainn data
    common.py     the result console, reading inputs, loading the model
"""
