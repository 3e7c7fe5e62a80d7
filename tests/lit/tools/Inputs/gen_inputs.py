#!/usr/bin/python3
"""Writes the bad inputs of the CLI error tests beside this script (committed):

  unsupported_ops.onnx     a valid ONNX model with two ops kiln does not import
  wrong_dtype/             inputs for models/sample-encoder with f32 token ids
  mismatched_seq/          inputs for models/sample-encoder whose 'seq' disagree

usage: /usr/bin/python3 tests/lit/tools/Inputs/gen_inputs.py   (needs numpy, onnx)
"""
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as missing:
    sys.exit(f"gen_inputs.py needs numpy and onnx ({missing.name} is missing): "
             "run scripts/install-deps, then /usr/bin/python3 tests/lit/tools/Inputs/gen_inputs.py")

HERE = os.path.dirname(os.path.abspath(__file__))


def write_unsupported_ops_model(path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu_ok"),
        helper.make_node("Det", ["r"], ["d"], name="det_node"),
        helper.make_node("Hardmax", ["r"], ["y"], name="hardmax_node"),
    ]
    graph = helper.make_graph(
        nodes, "unsupported",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
        outputs=[helper.make_tensor_value_info("d", TensorProto.FLOAT, []),
                 helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def write_inputs(directory, tensors):
    os.makedirs(directory, exist_ok=True)
    for k, (name, value) in enumerate(tensors):
        with open(os.path.join(directory, f"input_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(value, name).SerializeToString())


def main():
    write_unsupported_ops_model(os.path.join(HERE, "unsupported_ops.onnx"))
    mask = np.ones((2, 7), dtype=np.int64)
    write_inputs(os.path.join(HERE, "wrong_dtype"),
                 [("input_ids", np.zeros((2, 7), dtype=np.float32)), ("attention_mask", mask)])
    write_inputs(os.path.join(HERE, "mismatched_seq"),
                 [("input_ids", np.zeros((2, 7), dtype=np.int64)),
                  ("attention_mask", np.ones((2, 5), dtype=np.int64))])


if __name__ == "__main__":
    main()
