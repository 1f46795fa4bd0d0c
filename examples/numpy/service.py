"""Solves the linear system A x = b sent as JSON input and reports A's singular values.

    teepy run --allow-site-packages examples/numpy/service.py --input '{"a": [[3, 1], [1, 2]], "b": [9, 8]}'

Without input it solves that same system.
"""
import json

import numpy as np
import teex

request = json.loads(teex.TEEX_getinput() or '{"a": [[3, 1], [1, 2]], "b": [9, 8]}')
a = np.array(request["a"], dtype=float)
b = np.array(request["b"], dtype=float)
x = np.linalg.solve(a, b)
singular = np.linalg.svd(a, compute_uv=False)
teex.TEEX_return(json.dumps({
    "x": x.round(9).tolist(),
    "singular_values": singular.round(9).tolist(),
    "condition": round(float(singular[0] / singular[-1]), 9),
}))
