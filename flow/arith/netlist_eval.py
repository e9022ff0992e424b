"""An exact interpreter of da4ml netlists (``CombLogic``): integer codes, every sample at once.

Why it exists: the gates that compare a traced netlist with the emulator (:mod:`flow.arith.equivalence`,
:mod:`flow.rtl.compose`) need the netlist's true outputs. da4ml 0.6's C++ interpreter (``CombLogic.predict``)
wraps the result of every op that quantizes (an input, relu, quantize, MSB multiplexer) with a type minimum held
in an ``int32_t``: for a *signed* op wider than 32 bits, ``-2**(w-1)`` truncates to 0 and a negative result comes
out as its code plus ``2**w``. hls4ml's default precision gives such ops (``ap_fixed<36,16>`` logits, the
``max`` of a stable softmax over them): the gate refused correct RTL, naming the softmax (measured: the maximum
of two ``ap_fixed<33,23>`` variables differed on 157 of 200 random pairs; ``tests/test_netlist_eval.py``).

The semantics here are those of the Verilog that :mod:`flow.rtl.emit` writes (one statement per op): every op's
code is a *window* of an exact integer, bits ``[lo, lo + w)`` of the exact result at the op's LSB (``w = k + i + f``
from ``da4ml.types.minimal_kif(op.qint)``: dropping low bits is truncation, TRN; keeping ``w`` bits is
two's-complement wrap-around, WRAP). A code means ``code * 2**-f``; outputs are ``(+/-)code * 2**(out_shift - f)``.

Codes are int64 while every intermediate of an op fits :data:`flow.arith.fxp.INT64_SAFE_BITS` bits, else Python
ints (object arrays), so no width is too wide. :func:`predict` takes and returns float64 values like
``CombLogic.predict`` and uses da4ml's C++ interpreter where it is exact (:func:`cpp_is_exact`: no op wider
than :data:`CPP_EXACT_BITS` bits, no MSB multiplexer on a wide unsigned key; there the two agree, tested op by
op) and this interpreter otherwise; :func:`evaluate_codes` is exact at any
width.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.arith import fxp

CPP_EXACT_BITS = 32  # da4ml's C++ interpreter is exact when no op is wider (its type minimum is an int32_t)


def op_formats(comb: Any) -> list[tuple[bool, int, int]]:
    """Per op: (signed, width w, fractional bits f) of its code, from ``minimal_kif(op.qint)``."""
    from da4ml.types import minimal_kif

    out = []
    for op in comb.ops:
        k, i, f = minimal_kif(op.qint)
        out.append((bool(k), max(int(k) + int(i) + int(f), 0), int(f)))
    return out


def max_width(comb: Any, formats: list[tuple[bool, int, int]] | None = None) -> int:
    """The widest op of ``comb`` (bits); ``formats``: ``op_formats(comb)`` when the caller has them."""
    return max((w for _, w, _ in (op_formats(comb) if formats is None else formats)), default=0)


def cpp_is_exact(comb: Any, formats: list[tuple[bool, int, int]] | None = None) -> bool:
    """Whether da4ml's C++ interpreter computes ``comb`` exactly: no op wider than :data:`CPP_EXACT_BITS` bits,
    and no MSB multiplexer keyed by an unsigned code of 3 or more bits (the C++ takes such a key as set when its
    code exceeds ``2**(w-2)``, not when its MSB is set; see tests/test_rtl_emit.py). ``formats``: ``op_formats(comb)``
    when the caller has them."""
    fmts = op_formats(comb) if formats is None else formats
    if max_width(comb, fmts) > CPP_EXACT_BITS:
        return False
    for op in comb.ops:
        if abs(op.opcode) == 6:
            signed, w, _ = fmts[int(op.data) & 0xFFFFFFFF]
            if not signed and w >= 3:
                return False
    return True


def predict(comb: Any, x: np.ndarray, formats: list[tuple[bool, int, int]] | None = None) -> np.ndarray:
    """``comb``'s outputs (N, n_out) as float64 for inputs ``x`` (N, n_in) float64 values, exactly: da4ml's
    C++ interpreter where it is exact (:func:`cpp_is_exact`, the faster), else :func:`evaluate_codes`.
    Output values need at most 53 significant bits to be exact as float64 (both paths). ``formats``:
    ``op_formats(comb)``, computed once by a caller that runs one netlist many times (a folded step kernel)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    fmts = op_formats(comb) if formats is None else formats
    if cpp_is_exact(comb, fmts):
        return comb.predict(x)
    in_fracs, scale = [0] * comb.shape[0], [0] * comb.shape[0]
    for op, (_, _, f) in zip(comb.ops, fmts):
        if op.opcode == -1:  # the port holds the code of x * 2**inp_shift at the op's f (as the C++ reads it)
            in_fracs[op.id0], scale[op.id0] = f, f + int(comb.inp_shifts[op.id0])
    floors = np.floor(np.ldexp(x, np.asarray(scale, dtype=np.int64)))
    if np.all(np.abs(floors) < 2.0 ** fxp.INT64_SAFE_BITS):
        codes = floors.astype(np.int64)  # exact: integral floats below 2**62; the ops widen where they need to
    else:
        codes = np.empty(x.shape, dtype=object)
        for j in range(x.shape[1]):
            codes[:, j] = [int(v) for v in floors[:, j]]
    out, fracs = evaluate_codes(comb, codes, in_fracs, fmts)
    return np.stack([fxp.to_float(out[:, j], fracs[j]) for j in range(out.shape[1])], axis=1) if out.shape[1] \
        else np.zeros((len(x), 0))


def _signed32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


def _wide(c: np.ndarray, bits: int) -> np.ndarray:
    """``c`` as Python ints when a result of ``bits`` bits may not fit int64."""
    return fxp.as_object(c) if bits > fxp.INT64_SAFE_BITS else c


def _at(c: np.ndarray, bits: int, f_from: int, f_to: int) -> np.ndarray:
    """Codes ``c`` (at most ``bits`` bits) at ``f_from`` fractional bits moved to ``f_to``: exact to the left,
    floor (TRN) to the right."""
    if f_to >= f_from:
        return _wide(c, bits + f_to - f_from) << (f_to - f_from) if f_to > f_from else c
    s = f_from - f_to
    return c >> s if c.dtype == object or s < 63 else np.where(c < 0, -1, 0)


def _wrap(c: np.ndarray, signed: bool, w: int) -> np.ndarray:
    """The low ``w`` bits of ``c``, two's complement when ``signed`` (WRAP); int64 when they fit."""
    if w <= 0:
        return np.zeros(c.shape, dtype=np.int64)
    c = c & ((1 << w) - 1)
    if signed:
        c = np.where(c >= 1 << (w - 1), c - (1 << w), c)
    if c.dtype == object and w <= fxp.INT64_SAFE_BITS:
        return c.astype(np.int64)
    return c


def evaluate_codes(comb: Any, codes: np.ndarray, in_fracs: list[int],
                   formats: list[tuple[bool, int, int]] | None = None) -> tuple[np.ndarray, list[int]]:
    """Run ``comb`` on integer inputs: ``codes`` (N, n_in) int64 or Python ints, input j worth
    ``codes[:, j] * 2**-in_fracs[j]``. Returns the output codes (N, n_out) and their fractional bits: output
    j is worth ``out[:, j] * 2**-fracs[j]`` (exact, any width).

    One statement per opcode, as :mod:`flow.rtl.emit` writes it (``w``, ``f``: the op's width and fractional
    bits; every result is floored to ``f`` and wrapped to ``w`` bits):

    ``-1`` input; ``0``/``1`` ``v0 +/- v1 * 2**data``; ``2``/``-2`` ``relu(+/-v0)``; ``3``/``-3``
    ``+/-v0``; ``4`` ``v0 + data * 2**-f``; ``5`` the constant ``data * 2**-f``; ``6``/``-6``
    ``MSB(key) ? v0 : (+/-v1) * 2**shift`` (key op ``data & 0xffffffff``, shift ``data >> 32``; the MSB of a
    signed code is its sign, of an unsigned one bit ``w - 1``); ``7`` ``v0 * v1``; ``8`` the table word at the
    key's code read as unsigned (da4ml's padded ROM); ``9``/``-9`` NOT / OR-reduce / AND-reduce of ``+/-v0``;
    ``10`` AND/OR/XOR of ``+/-v0`` and ``(+/-v1) * 2**shift``, both at ``f`` and ``w`` bits.
    """
    codes = np.asarray(codes)
    n = codes.shape[0]
    fmts = op_formats(comb) if formats is None else formats
    buf: list[np.ndarray | None] = []
    done_after = _last_reads(comb)  # op i -> the results no op after i reads: freed (memory ~ live ops, not all)
    for i, op in enumerate(comb.ops):
        k, w, f = fmts[i]
        code = op.opcode
        if w <= 0:
            buf.append(np.zeros(n, dtype=np.int64))
            for j in done_after.get(i, ()):
                buf[j] = None
            continue

        def arg(j: int, neg: bool = False) -> tuple[np.ndarray, int, int]:
            """Operand j's codes (negated: exactly, one bit wider), width and fractional bits."""
            c = buf[j]
            _, wj, fj = fmts[j]
            if neg:
                c, wj = -_wide(c, wj + 1), wj + 1
            return c, wj, fj

        if code == -1:
            c = _wide(np.asarray(codes[:, op.id0]), fxp.INT64_SAFE_BITS + 1) if codes.dtype == object \
                else codes[:, op.id0].astype(np.int64)
            bits = fxp.bit_length(np.asarray(c)) + 1
            r = _at(c, bits, in_fracs[op.id0], f)
        elif code in (0, 1):
            (a, wa, fa), (b, wb, fb) = arg(op.id0), arg(op.id1, code == 1)
            fb -= int(op.data)
            big = max(fa, fb, f)
            r = _at(_wide(_at(a, wa, fa, big), max(wa + big - fa, wb + big - fb) + 1)
                    + _wide(_at(b, wb, fb, big), max(wa + big - fa, wb + big - fb) + 1),
                    max(wa + big - fa, wb + big - fb) + 1, big, f)
        elif code in (2, -2):
            a, wa, fa = arg(op.id0, code == -2)
            r = np.where(a < 0, 0, _at(a, wa, fa, f))
        elif code in (3, -3):
            a, wa, fa = arg(op.id0, code == -3)
            r = _at(a, wa, fa, f)
        elif code == 4:
            a, wa, fa = arg(op.id0)
            big = max(fa, f)
            const = int(op.data) << (big - f)
            r = _at(_wide(_at(a, wa, fa, big), wa + big - fa + 1) + const,
                    max(wa + big - fa, abs(const).bit_length()) + 1, big, f)
        elif code == 5:
            r = np.full(n, int(op.data), dtype=object if abs(int(op.data)) >= 1 << fxp.INT64_SAFE_BITS else np.int64)
        elif code in (6, -6):
            key = int(op.data) & 0xFFFFFFFF
            ks, kw, _ = fmts[key]
            kc = buf[key]
            sel = (kc < 0) if ks else ((kc >> (kw - 1)) & 1).astype(bool) if kw > 0 else np.zeros(n, dtype=bool)
            a, wa, fa = arg(op.id0)
            b, wb, fb = arg(op.id1, code == -6)
            fb -= _signed32(int(op.data) >> 32)
            r = np.where(sel, _wrap(_at(a, wa, fa, f), k, w), _wrap(_at(b, wb, fb, f), k, w))
        elif code == 7:
            (a, wa, fa), (b, wb, fb) = arg(op.id0), arg(op.id1)
            r = _at(_wide(a, wa + wb) * _wide(b, wa + wb), wa + wb, fa + fb, f)
        elif code == 8:
            r = _lookup(comb, op, buf[op.id0], fmts[op.id0], f)
        elif code in (9, -9):
            a, wa, _ = arg(op.id0, code == -9 and op.data != 1)
            mask = (1 << wa) - 1
            if op.data == 0:
                r = ~a
            elif op.data == 1:
                r = ((a & mask) != 0).astype(np.int64)
            else:
                r = ((a & mask) == mask).astype(np.int64)
        elif code == 10:
            data = int(op.data)
            a, wa, fa = arg(op.id0, bool((data >> 32) & 1))
            b, wb, fb = arg(op.id1, bool((data >> 33) & 1))
            fb -= _signed32(data)
            mask = (1 << w) - 1
            wa_, wb_ = _at(a, wa, fa, f) & mask, _at(b, wb, fb, f) & mask
            r = {0: lambda: wa_ & wb_, 1: lambda: wa_ | wb_, 2: lambda: wa_ ^ wb_}[(data >> 56) & 0xFF]()
        else:
            raise ValueError(f"op {i}: unknown da4ml opcode {code} ({op})")
        buf.append(_wrap(np.asarray(r), k, w))
        for j in done_after.get(i, ()):
            buf[j] = None
    out = np.zeros((n, comb.shape[1]), dtype=object)
    fracs = []
    for j, idx in enumerate(comb.out_idxs):
        fracs.append(fmts[idx][2] - int(comb.out_shifts[j]))  # idx -1: the last op's format, as da4ml's out_qint
        if idx < 0:
            continue
        c = buf[idx]
        out[:, j] = -fxp.as_object(c) if comb.out_negs[j] else fxp.as_object(c)
    return fxp.as_int64(out) if out.size else out.astype(np.int64), fracs


def _last_reads(comb: Any) -> dict[int, list[int]]:
    """Op index i -> the ops whose result is last read by op i (never an output's op). Every operand field of an op
    that may read the buffer counts as a read (an unused field only keeps a result longer)."""
    n_ops = len(comb.ops)
    last = list(range(n_ops))
    for i, op in enumerate(comb.ops):
        if op.opcode in (-1, 5):
            continue
        reads = [int(op.id0), int(op.id1)]
        if abs(op.opcode) == 6:
            reads.append(int(op.data) & 0xFFFFFFFF)
        for j in reads:
            if 0 <= j < n_ops:
                last[j] = max(last[j], i)
    for idx in comb.out_idxs:
        if idx >= 0:
            last[idx] = n_ops
    done: dict[int, list[int]] = {}
    for j, i in enumerate(last):
        if i < n_ops:
            done.setdefault(i, []).append(j)
    return done


def _lookup(comb: Any, op: Any, key: np.ndarray, key_fmt: tuple[bool, int, int], f: int) -> np.ndarray:
    """Opcode 8: the word of da4ml's padded table (the ROM the RTL holds) at the key's code read as unsigned."""
    table = comb.lookup_tables[op.data]
    words = table.padded_table(comb.ops[op.id0].qint)
    _, kw, _ = key_fmt
    addr = np.asarray(key & ((1 << kw) - 1), dtype=np.int64)
    vals = words[addr]
    if np.any(np.isnan(vals)):
        raise ValueError(f"a lookup table read outside its entries (op {op})")
    from da4ml.types import minimal_kif

    _, _, f_t = minimal_kif(table.spec.out_qint)
    return _at(vals.astype(np.int64), 33, int(f_t), f)
