# check.py - the ONNX package's own check of an exported file, for the onnx
# suite of test_pstrain (tests/test_onnx.c). Usage: /usr/bin/python3 check.py MODEL
# Runs onnx.checker.check_model with full_check (strict shape inference too)
# and prints what the serving contract fixes, one "key=value" a line:
# ir, opset, producer, input and output names with shapes, then metadata.
import sys

import onnx


def shape(v):
    dims = v.type.tensor_type.shape.dim
    return ",".join(d.dim_param if d.HasField("dim_param") else str(d.dim_value) for d in dims)


def main(path):
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    g = m.graph
    print(f"ir={m.ir_version}")
    print("opset=" + ",".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in m.opset_import))
    print(f"producer={m.producer_name} {m.producer_version}")
    for v in g.input:
        print(f"input={v.name}[{shape(v)}] type={v.type.tensor_type.elem_type}")
    for v in g.output:
        print(f"output={v.name}[{shape(v)}] type={v.type.tensor_type.elem_type}")
    for p in m.metadata_props:
        print(f"meta.{p.key}={p.value}")


if __name__ == "__main__":
    main(sys.argv[1])
