"""ONNX graphs of crnn/PyTorch recurrent stacks, built with onnx.helper from the weights.

Standard operators only (LSTM, GRU, RNN), opset 14. Weight layout per the
ONNX spec, per direction (index 0 forward, 1 reverse):
    W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H) = [Wb, Rb]
Gate blocks are reordered from PyTorch's:
    LSTM  PyTorch [i, f, g, o]  ->  ONNX [i, o, f, c]
    GRU   PyTorch [r, z, n]     ->  ONNX [z, r, h], with linear_before_reset=1
          (PyTorch applies the reset gate after the product: r * (W_hn h + b_hn))
    RNN   one block, activation Tanh
A 2-layer stack feeds layer 0's Y (T, D, B, H) to layer 1 as (T, B, D*H)
through Transpose + Reshape. Graph outputs: Y of the last layer (T, D, B, H)
and Y_h (and Y_c) of every layer (D, B, H).
"""

from __future__ import annotations

import numpy as np

OPSET = 14
_OP = {"rnn_tanh": "RNN", "lstm": "LSTM", "gru": "GRU"}
_ORDER = {"rnn_tanh": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}   # PyTorch blocks in ONNX order


def _reorder(w, cell, H):
    """PyTorch gate blocks (G*H, ...) -> ONNX gate order."""
    return np.concatenate([w[k * H:(k + 1) * H] for k in _ORDER[cell]], axis=0)


def onnx_weights(cell, params, layer, D, H, dtype):
    """W, R, B of one layer (all directions) in ONNX layout, from PyTorch-named params."""
    Ws, Rs, Bs = [], [], []
    for d in range(D):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        Ws.append(_reorder(np.asarray(params["weight_ih" + sfx], dtype), cell, H))
        Rs.append(_reorder(np.asarray(params["weight_hh" + sfx], dtype), cell, H))
        G = Ws[-1].shape[0]
        b_ih = params.get("bias_ih" + sfx)
        b_hh = params.get("bias_hh" + sfx)
        b_ih = np.zeros(G, dtype) if b_ih is None else _reorder(np.asarray(b_ih, dtype), cell, H)
        b_hh = np.zeros(G, dtype) if b_hh is None else _reorder(np.asarray(b_hh, dtype), cell, H)
        Bs.append(np.concatenate([b_ih, b_hh]))
    return np.stack(Ws), np.stack(Rs), np.stack(Bs)


def build_model(cell, params, input_size, hidden_size, num_layers=1, bidirectional=False,
                dtype=np.float32, with_state_inputs=False):
    """Serialized ONNX model (bytes).

    Inputs: X (T, B, I); with_state_inputs (single layer only): initial_h (D, B, H)
    and for LSTM initial_c. Outputs: Y (last layer, T x D x B x H), Y_h_l{k} (and Y_c_l{k}).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT if np.dtype(dtype) == np.float32 else TensorProto.DOUBLE
    H, D = hidden_size, 2 if bidirectional else 1
    direction = "bidirectional" if bidirectional else "forward"
    if with_state_inputs and num_layers != 1:
        raise ValueError("state inputs are only built for a single layer")
    inputs = [helper.make_tensor_value_info("X", elem, ["T", "B", input_size])]
    if with_state_inputs:
        inputs.append(helper.make_tensor_value_info("initial_h", elem, [D, "B", H]))
        if cell == "lstm":
            inputs.append(helper.make_tensor_value_info("initial_c", elem, [D, "B", H]))
    nodes, inits, outputs = [], [], []
    layer_in = "X"
    for layer in range(num_layers):
        W, R, B = onnx_weights(cell, params, layer, D, H, dtype)
        names = [f"W_l{layer}", f"R_l{layer}", f"B_l{layer}"]
        inits += [numpy_helper.from_array(a, n) for a, n in zip((W, R, B), names)]
        node_inputs = [layer_in] + names
        if with_state_inputs:
            node_inputs += ["", "initial_h"] + (["initial_c"] if cell == "lstm" else [])
        last = layer == num_layers - 1
        y_name = "Y" if last else f"Y_l{layer}"
        node_outputs = [y_name, f"Y_h_l{layer}"] + ([f"Y_c_l{layer}"] if cell == "lstm" else [])
        attrs = dict(hidden_size=H, direction=direction)
        if cell == "gru":
            attrs["linear_before_reset"] = 1
        if cell == "rnn_tanh":
            attrs["activations"] = ["Tanh"] * D
        nodes.append(helper.make_node(_OP[cell], node_inputs, node_outputs, name=f"{_OP[cell]}_l{layer}", **attrs))
        outputs.append(helper.make_tensor_value_info(f"Y_h_l{layer}", elem, [D, "B", H]))
        if cell == "lstm":
            outputs.append(helper.make_tensor_value_info(f"Y_c_l{layer}", elem, [D, "B", H]))
        if not last:   # (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H)
            shape_name = f"shape_l{layer}"
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), shape_name))
            nodes.append(helper.make_node("Transpose", [y_name], [y_name + "_t"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [y_name + "_t", shape_name], [y_name + "_in"]))
            layer_in = y_name + "_in"
    outputs.insert(0, helper.make_tensor_value_info("Y", elem, ["T", D, "B", H]))
    graph = helper.make_graph(nodes, f"crnn_bench_{cell}", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="crnn-bench")
    model.ir_version = 8      # opset 14 era; every recent onnxruntime reads it
    onnx.checker.check_model(model)
    return model.SerializeToString()


def y_to_torch_layout(y):
    """ONNX Y (T, D, B, H) -> PyTorch/crnn y (T, B, D*H)."""
    T, D, B, H = y.shape
    return np.ascontiguousarray(y.transpose(0, 2, 1, 3)).reshape(T, B, D * H)
