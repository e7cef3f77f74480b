"""A lane-level NumPy model of cuda/attention_mma.cu's and cuda/attention_tf32.cu's data movement, to check the fragment layouts and the
index math of the tensor-core kernels without a GPU (run: /usr/bin/python3 tests/cuda/attention_mma_fragments.py).

ldmatrix (.x4, plain and .trans), mma.m16n8k16 and mma.m16n8k8 (TF32) are modelled per lane exactly as the PTX ISA defines them;
the shared-memory address expressions, the tile loops, the masking, the online softmax and the backward's
dS^T / dQ scheme are transcribed from the kernels (same names). Values stay in f64 (no 16-bit rounding), so
the kernels' maths must match the direct formulas to ~1e-12; a wrong lane address or fragment order gives
O(1) errors. Dropout is modelled by a keep mask indexed like the kernels' Philox element index.
Not modelled: cp.async timing, bank conflicts, the 16-bit rounding of P and dS.
"""
import sys

import numpy as np

PAD = 8
FWD_BQ, FWD_BK, BWD_BK = 64, 64, 64


def ldmatrix_x4(smem, addr, trans=False):
    """addr(lane) -> element offset of the row that lane provides. Returns regs[lane][m] = (lo, hi)."""
    regs = [[None] * 4 for _ in range(32)]
    for lane in range(32):
        g, t = lane // 4, lane % 4
        for m in range(4):
            if not trans:  # (row g, cols 2t, 2t+1) of matrix m
                base = addr(8 * m + g)
                regs[lane][m] = (smem[base + 2 * t], smem[base + 2 * t + 1])
            else:  # (rows 2t, 2t+1, col g)
                regs[lane][m] = (smem[addr(8 * m + 2 * t) + g], smem[addr(8 * m + 2 * t + 1) + g])
    return regs


def mma(c, a, b0, b1):
    """c[lane] (4 floats) += A B; a[lane] = 4 pairs, b0[lane], b1[lane] = pairs (PTX m16n8k16 layouts)."""
    A = np.zeros((16, 16))
    B = np.zeros((16, 8))
    for lane in range(32):
        g, t = lane // 4, lane % 4
        for e in range(2):
            A[g, 2 * t + e] = a[lane][0][e]
            A[g + 8, 2 * t + e] = a[lane][1][e]
            A[g, 2 * t + 8 + e] = a[lane][2][e]
            A[g + 8, 2 * t + 8 + e] = a[lane][3][e]
            B[2 * t + e, g] = b0[lane][e]
            B[2 * t + 8 + e, g] = b1[lane][e]
    C = A @ B
    for lane in range(32):
        g, t = lane // 4, lane % 4
        c[lane][0] += C[g, 2 * t]
        c[lane][1] += C[g, 2 * t + 1]
        c[lane][2] += C[g + 8, 2 * t]
        c[lane][3] += C[g + 8, 2 * t + 1]


def causal_limit(causal, tq, tk, i):
    if not causal:
        return tk
    return max(0, min(tk, i + (tk - tq) + 1))


def tile(src, r0, total, rows, D):
    """load_rows: rows [r0, r0 + rows) into a flat [rows][D + PAD] tile, zero beyond total."""
    S = D + PAD
    out = np.zeros(rows * S)
    for r in range(rows):
        if r0 + r < total:
            out[r * S:r * S + D] = src[r0 + r]
    return out


def forward_block(q, k, v, keep_key, keep_drop, causal, scale, row0):
    """One forward block (4 warps) of one head. Returns out rows [row0, row0 + 64) and their lse."""
    tq, D = q.shape
    tk = k.shape[0]
    S = D + PAD
    last_row = min(row0 + FWD_BQ, tq) - 1
    n_kt = (causal_limit(causal, tq, tk, last_row) + FWD_BK - 1) // FWD_BK
    block_lim = causal_limit(causal, tq, tk, row0)
    q_s = tile(q, row0, tq, FWD_BQ, D)
    res_o = np.zeros((FWD_BQ, D))
    res_lse = np.full(FWD_BQ, -np.inf)
    for warp in range(4):
        qf = [ldmatrix_x4(q_s, lambda lane, ks=ks: (warp * 16 + (lane & 15)) * S + ks * 16 + 8 * (lane >> 4))
              for ks in range(D // 16)]
        o = [[np.zeros(4) for _ in range(32)] for _ in range(D // 8)]
        m = [[-np.inf, -np.inf] for _ in range(32)]
        l = [[0.0, 0.0] for _ in range(32)]
        for kt in range(n_kt):
            j0 = kt * FWD_BK
            kb = tile(k, j0, tk, FWD_BK, D)
            vb = tile(v, j0, tk, FWD_BK, D)
            mb = [1 if j0 + x < tk and keep_key[j0 + x] else 0 for x in range(FWD_BK)]
            s = [[np.zeros(4) for _ in range(32)] for _ in range(FWD_BK // 8)]
            for ks in range(D // 16):
                for np_ in range(FWD_BK // 16):
                    kf = ldmatrix_x4(kb, lambda lane: (np_ * 16 + (lane & 7) + 8 * (lane >> 4)) * S + ks * 16 +
                                     8 * ((lane >> 3) & 1))
                    mma([s[2 * np_][ln] for ln in range(32)], qf[ks], [kf[ln][0] for ln in range(32)],
                        [kf[ln][1] for ln in range(32)])
                    mma([s[2 * np_ + 1][ln] for ln in range(32)], qf[ks], [kf[ln][2] for ln in range(32)],
                        [kf[ln][3] for ln in range(32)])
            need_mask = not all(keep_key) or j0 + FWD_BK > block_lim
            for lane in range(32):
                g, t = lane // 4, lane % 4
                r_lo = row0 + warp * 16 + g
                r_hi = r_lo + 8
                lim = [causal_limit(causal, tq, tk, r) if r < tq else 0 for r in (r_lo, r_hi)]
                for nt in range(FWD_BK // 8):
                    for e in range(4):
                        x = s[nt][lane][e] * scale / np.log(2)
                        kl = nt * 8 + 2 * t + (e & 1)
                        if need_mask and not (j0 + kl < lim[e // 2] and mb[kl]):
                            x = -np.inf
                        s[nt][lane][e] = x
            # online softmax per row: the quad's max (all lanes' maxima before any lane exponentiates)
            quad_max = [[max([m[lane][half]] + [s[nt][ql][2 * half + e] for ql in range(4 * (lane // 4), 4 * (lane // 4) + 4)
                                                 for nt in range(FWD_BK // 8) for e in range(2)]) for half in range(2)]
                        for lane in range(32)]
            for lane in range(32):
                g, t = lane // 4, lane % 4
                for half in range(2):
                    mx = quad_max[lane][half]
                    base = 0.0 if mx == -np.inf else mx
                    alpha = 2.0 ** (m[lane][half] - base)
                    m[lane][half] = mx
                    l[lane][half] *= alpha
                    for x in range(D // 8):
                        o[x][lane][2 * half] *= alpha
                        o[x][lane][2 * half + 1] *= alpha
                    row = row0 + warp * 16 + g + 8 * half
                    for nt in range(FWD_BK // 8):
                        for e in range(2):
                            pv = 2.0 ** (s[nt][lane][2 * half + e] - base)
                            l[lane][half] += pv
                            key = j0 + nt * 8 + 2 * t + e
                            if row < tq and key < tk:
                                pv *= keep_drop[row, key]
                            s[nt][lane][2 * half + e] = pv
            for kk in range(FWD_BK // 16):
                a = [((s[2 * kk][ln][0], s[2 * kk][ln][1]), (s[2 * kk][ln][2], s[2 * kk][ln][3]),
                      (s[2 * kk + 1][ln][0], s[2 * kk + 1][ln][1]), (s[2 * kk + 1][ln][2], s[2 * kk + 1][ln][3]))
                     for ln in range(32)]
                for dp in range(D // 16):
                    vf = ldmatrix_x4(vb, lambda lane: (kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * S + dp * 16 +
                                     8 * (lane >> 4), trans=True)
                    mma(o[2 * dp], a, [vf[ln][0] for ln in range(32)], [vf[ln][1] for ln in range(32)])
                    mma(o[2 * dp + 1], a, [vf[ln][2] for ln in range(32)], [vf[ln][3] for ln in range(32)])
        for lane in range(32):
            g, t = lane // 4, lane % 4
            for half in range(2):
                lsum = sum(l[ql][half] for ql in range(4 * g, 4 * g + 4))
                r = warp * 16 + g + 8 * half
                inv = 1.0 / lsum if lsum > 0 else 0.0
                for x in range(D // 8):
                    res_o[r, x * 8 + 2 * t] = o[x][lane][2 * half] * inv
                    res_o[r, x * 8 + 2 * t + 1] = o[x][lane][2 * half + 1] * inv
                res_lse[r] = m[lane][half] * np.log(2) + np.log(lsum) if lsum > 0 else -np.inf
    return res_o, res_lse


def backward_block(q, k, v, dout, lse, dr, keep_key, keep_drop, causal, scale, j0, dq_acc):
    """One backward block (keys [j0, j0 + 64)) of one head: returns dk, dv rows; adds into dq_acc."""
    tq, D = q.shape
    tk = k.shape[0]
    S = D + PAD
    BQ = 64 if D == 64 else 32
    DS = BQ + PAD
    ok = [1 if j0 + x < tk and keep_key[j0 + x] else 0 for x in range(BWD_BK)]
    q_begin = max(0, j0 - (tk - tq)) if causal else 0
    n_qt = (tq + BQ - 1) // BQ
    qt0 = q_begin // BQ
    dk_out = np.zeros((BWD_BK, D))
    dv_out = np.zeros((BWD_BK, D))
    if not any(ok) or qt0 >= n_qt:
        return dk_out, dv_out
    k_s = tile(k, j0, tk, BWD_BK, D)
    v_s = tile(v, j0, tk, BWD_BK, D)
    dk_acc = [[[np.zeros(4) for _ in range(32)] for _ in range(D // 8)] for _ in range(4)]
    dv_acc = [[[np.zeros(4) for _ in range(32)] for _ in range(D // 8)] for _ in range(4)]
    for qt in range(qt0, n_qt):
        i0 = qt * BQ
        qb = tile(q, i0, tq, BQ, D)
        dob = tile(dout, i0, tq, BQ, D)
        lse2b = [(np.inf if lse[i0 + x] == -np.inf else lse[i0 + x] / np.log(2)) if i0 + x < tq else np.inf
                 for x in range(BQ)]
        drb = [dr[i0 + x] if i0 + x < tq else 0.0 for x in range(BQ)]
        ds_s = np.zeros(BWD_BK * DS)
        for warp in range(4):
            kw = warp * 16
            st = [[np.zeros(4) for _ in range(32)] for _ in range(BQ // 8)]
            dpt = [[np.zeros(4) for _ in range(32)] for _ in range(BQ // 8)]
            for ks in range(D // 16):
                ka = ldmatrix_x4(k_s, lambda lane: (kw + (lane & 15)) * S + ks * 16 + 8 * (lane >> 4))
                va = ldmatrix_x4(v_s, lambda lane: (kw + (lane & 15)) * S + ks * 16 + 8 * (lane >> 4))
                for np_ in range(BQ // 16):
                    off = lambda lane: (np_ * 16 + (lane & 7) + 8 * (lane >> 4)) * S + ks * 16 + 8 * ((lane >> 3) & 1)
                    qf = ldmatrix_x4(qb, off)
                    mma(st[2 * np_], ka, [qf[ln][0] for ln in range(32)], [qf[ln][1] for ln in range(32)])
                    mma(st[2 * np_ + 1], ka, [qf[ln][2] for ln in range(32)], [qf[ln][3] for ln in range(32)])
                    df = ldmatrix_x4(dob, off)
                    mma(dpt[2 * np_], va, [df[ln][0] for ln in range(32)], [df[ln][1] for ln in range(32)])
                    mma(dpt[2 * np_ + 1], va, [df[ln][2] for ln in range(32)], [df[ln][3] for ln in range(32)])
            for lane in range(32):
                g, t = lane // 4, lane % 4
                key_lo = j0 + kw + g
                for nt in range(BQ // 8):
                    for e in range(4):
                        ql = nt * 8 + 2 * t + (e & 1)
                        i = i0 + ql
                        key = key_lo if e < 2 else key_lo + 8
                        kok = ok[kw + g] if e < 2 else ok[kw + g + 8]
                        allowed = kok and (not causal or key <= i + (tk - tq))
                        pt = 2.0 ** (st[nt][lane][e] * scale / np.log(2) - lse2b[ql]) if allowed else 0.0
                        keep = keep_drop[i, key] if pt > 0 else 1.0
                        dpt[nt][lane][e] = pt * (dpt[nt][lane][e] * keep - drb[ql])
                        st[nt][lane][e] = pt * keep
            for kk in range(BQ // 16):
                pa = [((st[2 * kk][ln][0], st[2 * kk][ln][1]), (st[2 * kk][ln][2], st[2 * kk][ln][3]),
                       (st[2 * kk + 1][ln][0], st[2 * kk + 1][ln][1]), (st[2 * kk + 1][ln][2], st[2 * kk + 1][ln][3]))
                      for ln in range(32)]
                sa = [((dpt[2 * kk][ln][0], dpt[2 * kk][ln][1]), (dpt[2 * kk][ln][2], dpt[2 * kk][ln][3]),
                       (dpt[2 * kk + 1][ln][0], dpt[2 * kk + 1][ln][1]),
                       (dpt[2 * kk + 1][ln][2], dpt[2 * kk + 1][ln][3])) for ln in range(32)]
                for dp in range(D // 16):
                    off = lambda lane: (kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * S + dp * 16 + 8 * (lane >> 4)
                    bd = ldmatrix_x4(dob, off, trans=True)
                    mma(dv_acc[warp][2 * dp], pa, [bd[ln][0] for ln in range(32)], [bd[ln][1] for ln in range(32)])
                    mma(dv_acc[warp][2 * dp + 1], pa, [bd[ln][2] for ln in range(32)], [bd[ln][3] for ln in range(32)])
                    bq = ldmatrix_x4(qb, off, trans=True)
                    mma(dk_acc[warp][2 * dp], sa, [bq[ln][0] for ln in range(32)], [bq[ln][1] for ln in range(32)])
                    mma(dk_acc[warp][2 * dp + 1], sa, [bq[ln][2] for ln in range(32)], [bq[ln][3] for ln in range(32)])
            for lane in range(32):
                g, t = lane // 4, lane % 4
                for nt in range(BQ // 8):
                    ds_s[(kw + g) * DS + nt * 8 + 2 * t:(kw + g) * DS + nt * 8 + 2 * t + 2] = dpt[nt][lane][0:2]
                    ds_s[(kw + g + 8) * DS + nt * 8 + 2 * t:(kw + g + 8) * DS + nt * 8 + 2 * t + 2] = dpt[nt][lane][2:4]
        # dQ pieces (all warps after the barrier)
        kdc = D // 32
        for warp in range(4):
            for item in range(warp, (BQ // 16) * kdc, 4):
                mt, dc = item // kdc, item % kdc
                acc = [[np.zeros(4) for _ in range(32)] for _ in range(4)]
                for kk in range(BWD_BK // 16):
                    a = ldmatrix_x4(ds_s, lambda lane: (kk * 16 + (lane & 7) + 8 * (lane >> 4)) * DS + mt * 16 +
                                    8 * ((lane >> 3) & 1), trans=True)
                    for dp in range(2):
                        bk = ldmatrix_x4(k_s, lambda lane: (kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * S +
                                         dc * 32 + dp * 16 + 8 * (lane >> 4), trans=True)
                        mma(acc[2 * dp], a, [bk[ln][0] for ln in range(32)], [bk[ln][1] for ln in range(32)])
                        mma(acc[2 * dp + 1], a, [bk[ln][2] for ln in range(32)], [bk[ln][3] for ln in range(32)])
                for lane in range(32):
                    g, t = lane // 4, lane % 4
                    for half in range(2):
                        i = i0 + mt * 16 + g + 8 * half
                        if i >= tq:
                            continue
                        for x in range(4):
                            dq_acc[i, dc * 32 + x * 8 + 2 * t] += acc[x][lane][2 * half]
                            dq_acc[i, dc * 32 + x * 8 + 2 * t + 1] += acc[x][lane][2 * half + 1]
    for warp in range(4):
        for lane in range(32):
            g, t = lane // 4, lane % 4
            for half in range(2):
                r = warp * 16 + g + 8 * half
                for x in range(D // 8):
                    dk_out[r, x * 8 + 2 * t:x * 8 + 2 * t + 2] = dk_acc[warp][x][lane][2 * half:2 * half + 2] * scale
                    dv_out[r, x * 8 + 2 * t:x * 8 + 2 * t + 2] = dv_acc[warp][x][lane][2 * half:2 * half + 2]
    return dk_out, dv_out


# ---- TF32 kernels (cuda/attention_tf32.cu): mma.m16n8k8, fragments from plain 32-bit shared loads ----------
TF_FWD_BK = 32


def mma1688(c, a, b0, b1):
    """c[lane] += A B for m16n8k8 (TF32): a[lane] = 4 values, b0[lane], b1[lane] = values."""
    A = np.zeros((16, 8))
    B = np.zeros((8, 8))
    for lane in range(32):
        g, t = lane // 4, lane % 4
        A[g, t], A[g + 8, t], A[g, t + 4], A[g + 8, t + 4] = a[lane]
        B[t, g], B[t + 4, g] = b0[lane], b1[lane]
    C = A @ B
    for lane in range(32):
        g, t = lane // 4, lane % 4
        c[lane][0] += C[g, 2 * t]
        c[lane][1] += C[g, 2 * t + 1]
        c[lane][2] += C[g + 8, 2 * t]
        c[lane][3] += C[g + 8, 2 * t + 1]


def tile_f32(src, r0, total, rows, D):
    S = D + 4
    out = np.zeros(rows * S)
    for r in range(rows):
        if r0 + r < total:
            out[r * S:r * S + D] = src[r0 + r]
    return out


def forward_block_tf32(q, k, v, keep_key, keep_drop, causal, scale, row0):
    tq, D = q.shape
    tk = k.shape[0]
    S = D + 4
    BK = TF_FWD_BK
    last_row = min(row0 + FWD_BQ, tq) - 1
    n_kt = (causal_limit(causal, tq, tk, last_row) + BK - 1) // BK
    block_lim = causal_limit(causal, tq, tk, row0)
    q_s = tile_f32(q, row0, tq, FWD_BQ, D)
    res_o = np.zeros((FWD_BQ, D))
    res_lse = np.full(FWD_BQ, -np.inf)
    for warp in range(4):
        qf = []
        for ks in range(D // 8):
            fr = []
            for lane in range(32):
                g, t = lane // 4, lane % 4
                qr = (warp * 16 + g) * S + t
                fr.append((q_s[qr + 8 * ks], q_s[qr + 8 * S + 8 * ks], q_s[qr + 8 * ks + 4], q_s[qr + 8 * S + 8 * ks + 4]))
            qf.append(fr)
        o = [[np.zeros(4) for _ in range(32)] for _ in range(D // 8)]
        m = [[-np.inf, -np.inf] for _ in range(32)]
        l = [[0.0, 0.0] for _ in range(32)]
        for kt in range(n_kt):
            j0 = kt * BK
            kb = tile_f32(k, j0, tk, BK, D)
            vb = tile_f32(v, j0, tk, BK, D)
            mb = [1 if j0 + x < tk and keep_key[j0 + x] else 0 for x in range(BK)]
            s = [[np.zeros(4) for _ in range(32)] for _ in range(BK // 8)]
            for ks in range(D // 8):
                for nt in range(BK // 8):
                    kr = [(nt * 8 + ln // 4) * S + 8 * ks + ln % 4 for ln in range(32)]
                    mma1688(s[nt], qf[ks], [kb[kr[ln]] for ln in range(32)], [kb[kr[ln] + 4] for ln in range(32)])
            need_mask = not all(keep_key) or j0 + BK > block_lim
            for lane in range(32):
                g, t = lane // 4, lane % 4
                lim = [causal_limit(causal, tq, tk, r) if r < tq else 0 for r in (row0 + warp * 16 + g, row0 + warp * 16 + g + 8)]
                for nt in range(BK // 8):
                    for e in range(4):
                        x = s[nt][lane][e] * scale / np.log(2)
                        kl = nt * 8 + 2 * t + (e & 1)
                        if need_mask and not (j0 + kl < lim[e // 2] and mb[kl]):
                            x = -np.inf
                        s[nt][lane][e] = x
            quad_max = [[max([m[lane][half]] + [s[nt][ql][2 * half + e] for ql in range(4 * (lane // 4), 4 * (lane // 4) + 4)
                                                 for nt in range(BK // 8) for e in range(2)]) for half in range(2)]
                        for lane in range(32)]
            for lane in range(32):
                g, t = lane // 4, lane % 4
                for half in range(2):
                    mx = quad_max[lane][half]
                    base = 0.0 if mx == -np.inf else mx
                    alpha = 2.0 ** (m[lane][half] - base)
                    m[lane][half] = mx
                    l[lane][half] *= alpha
                    for x in range(D // 8):
                        o[x][lane][2 * half] *= alpha
                        o[x][lane][2 * half + 1] *= alpha
                    row = row0 + warp * 16 + g + 8 * half
                    for nt in range(BK // 8):
                        for e in range(2):
                            pv = 2.0 ** (s[nt][lane][2 * half + e] - base)
                            l[lane][half] += pv
                            key = j0 + nt * 8 + 2 * t + e
                            if row < tq and key < tk:
                                pv *= keep_drop[row, key]
                            s[nt][lane][2 * half + e] = pv
            for nt in range(BK // 8):
                a = [(s[nt][ln][0], s[nt][ln][2], s[nt][ln][1], s[nt][ln][3]) for ln in range(32)]
                vr = [(nt * 8 + 2 * (ln % 4)) * S + ln // 4 for ln in range(32)]
                for dt in range(D // 8):
                    mma1688(o[dt], a, [vb[vr[ln] + dt * 8] for ln in range(32)], [vb[vr[ln] + S + dt * 8] for ln in range(32)])
        for lane in range(32):
            g, t = lane // 4, lane % 4
            for half in range(2):
                lsum = sum(l[ql][half] for ql in range(4 * g, 4 * g + 4))
                r = warp * 16 + g + 8 * half
                inv = 1.0 / lsum if lsum > 0 else 0.0
                for x in range(D // 8):
                    res_o[r, x * 8 + 2 * t] = o[x][lane][2 * half] * inv
                    res_o[r, x * 8 + 2 * t + 1] = o[x][lane][2 * half + 1] * inv
                res_lse[r] = m[lane][half] * np.log(2) + np.log(lsum) if lsum > 0 else -np.inf
    return res_o, res_lse


def backward_block_tf32(q, k, v, dout, lse, dr, keep_key, keep_drop, causal, scale, j0, dq_acc):
    tq, D = q.shape
    tk = k.shape[0]
    S = D + 4
    BQ = 32 if D == 64 else 16
    DS = BQ + 4
    ok = [1 if j0 + x < tk and keep_key[j0 + x] else 0 for x in range(BWD_BK)]
    q_begin = max(0, j0 - (tk - tq)) if causal else 0
    n_qt = (tq + BQ - 1) // BQ
    qt0 = q_begin // BQ
    dk_out = np.zeros((BWD_BK, D))
    dv_out = np.zeros((BWD_BK, D))
    if not any(ok) or qt0 >= n_qt:
        return dk_out, dv_out
    k_s = tile_f32(k, j0, tk, BWD_BK, D)
    v_s = tile_f32(v, j0, tk, BWD_BK, D)
    dk_acc = [[[np.zeros(4) for _ in range(32)] for _ in range(D // 8)] for _ in range(4)]
    dv_acc = [[[np.zeros(4) for _ in range(32)] for _ in range(D // 8)] for _ in range(4)]
    for qt in range(qt0, n_qt):
        i0 = qt * BQ
        qb = tile_f32(q, i0, tq, BQ, D)
        dob = tile_f32(dout, i0, tq, BQ, D)
        lse2b = [(np.inf if lse[i0 + x] == -np.inf else lse[i0 + x] / np.log(2)) if i0 + x < tq else np.inf
                 for x in range(BQ)]
        drb = [dr[i0 + x] if i0 + x < tq else 0.0 for x in range(BQ)]
        ds_s = np.zeros(BWD_BK * DS)
        for warp in range(4):
            kw = warp * 16
            st = [[np.zeros(4) for _ in range(32)] for _ in range(BQ // 8)]
            dpt = [[np.zeros(4) for _ in range(32)] for _ in range(BQ // 8)]
            for ks in range(D // 8):
                kr = [(kw + ln // 4) * S + 8 * ks + ln % 4 for ln in range(32)]
                ka = [(k_s[r], k_s[r + 8 * S], k_s[r + 4], k_s[r + 8 * S + 4]) for r in kr]
                va = [(v_s[r], v_s[r + 8 * S], v_s[r + 4], v_s[r + 8 * S + 4]) for r in kr]
                for nt in range(BQ // 8):
                    qr = [(nt * 8 + ln // 4) * S + 8 * ks + ln % 4 for ln in range(32)]
                    mma1688(st[nt], ka, [qb[r] for r in qr], [qb[r + 4] for r in qr])
                    mma1688(dpt[nt], va, [dob[r] for r in qr], [dob[r + 4] for r in qr])
            for lane in range(32):
                g, t = lane // 4, lane % 4
                key_lo = j0 + kw + g
                for nt in range(BQ // 8):
                    for e in range(4):
                        ql = nt * 8 + 2 * t + (e & 1)
                        i = i0 + ql
                        key = key_lo if e < 2 else key_lo + 8
                        kok = ok[kw + g] if e < 2 else ok[kw + g + 8]
                        allowed = kok and (not causal or key <= i + (tk - tq))
                        pt = 2.0 ** (st[nt][lane][e] * scale / np.log(2) - lse2b[ql]) if allowed else 0.0
                        keep = keep_drop[i, key] if pt > 0 else 1.0
                        dpt[nt][lane][e] = pt * (dpt[nt][lane][e] * keep - drb[ql])
                        st[nt][lane][e] = pt * keep
            for nt in range(BQ // 8):
                pa = [(st[nt][ln][0], st[nt][ln][2], st[nt][ln][1], st[nt][ln][3]) for ln in range(32)]
                sa = [(dpt[nt][ln][0], dpt[nt][ln][2], dpt[nt][ln][1], dpt[nt][ln][3]) for ln in range(32)]
                rr = [(nt * 8 + 2 * (ln % 4)) * S + ln // 4 for ln in range(32)]
                for dt in range(D // 8):
                    mma1688(dv_acc[warp][dt], pa, [dob[r + dt * 8] for r in rr], [dob[r + S + dt * 8] for r in rr])
                    mma1688(dk_acc[warp][dt], sa, [qb[r + dt * 8] for r in rr], [qb[r + S + dt * 8] for r in rr])
            for lane in range(32):
                g, t = lane // 4, lane % 4
                for nt in range(BQ // 8):
                    ds_s[(kw + g) * DS + nt * 8 + 2 * t:(kw + g) * DS + nt * 8 + 2 * t + 2] = dpt[nt][lane][0:2]
                    ds_s[(kw + g + 8) * DS + nt * 8 + 2 * t:(kw + g + 8) * DS + nt * 8 + 2 * t + 2] = dpt[nt][lane][2:4]
        kdc = D // 32
        for warp in range(4):
            for item in range(warp, (BQ // 16) * kdc, 4):
                mt, dc = item // kdc, item % kdc
                acc = [[np.zeros(4) for _ in range(32)] for _ in range(4)]
                for ks in range(BWD_BK // 8):
                    dsr = [(ks * 8 + 2 * (ln % 4)) * DS + mt * 16 + ln // 4 for ln in range(32)]
                    a = [(ds_s[r], ds_s[r + 8], ds_s[r + DS], ds_s[r + DS + 8]) for r in dsr]
                    kr = [(ks * 8 + 2 * (ln % 4)) * S + dc * 32 + ln // 4 for ln in range(32)]
                    for x in range(4):
                        mma1688(acc[x], a, [k_s[r + x * 8] for r in kr], [k_s[r + S + x * 8] for r in kr])
                for lane in range(32):
                    g, t = lane // 4, lane % 4
                    for half in range(2):
                        i = i0 + mt * 16 + g + 8 * half
                        if i >= tq:
                            continue
                        for x in range(4):
                            dq_acc[i, dc * 32 + x * 8 + 2 * t] += acc[x][lane][2 * half]
                            dq_acc[i, dc * 32 + x * 8 + 2 * t + 1] += acc[x][lane][2 * half + 1]
    for warp in range(4):
        for lane in range(32):
            g, t = lane // 4, lane % 4
            for half in range(2):
                r = warp * 16 + g + 8 * half
                for x in range(D // 8):
                    dk_out[r, x * 8 + 2 * t:x * 8 + 2 * t + 2] = dk_acc[warp][x][lane][2 * half:2 * half + 2] * scale
                    dv_out[r, x * 8 + 2 * t:x * 8 + 2 * t + 2] = dv_acc[warp][x][lane][2 * half:2 * half + 2]
    return dk_out, dv_out


def reference(q, k, v, dout, keep_key, keep_drop, causal, scale):
    tq, tk = q.shape[0], k.shape[0]
    allow = np.array([[keep_key[j] and (not causal or j <= i + tk - tq) for j in range(tk)] for i in range(tq)])
    s = np.where(allow, q @ k.T * scale, -np.inf)
    mx = s.max(axis=1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0)
    e = np.exp(s - mx)
    lsum = e.sum(axis=1, keepdims=True)
    P = np.where(lsum > 0, e / np.where(lsum > 0, lsum, 1), 0)
    lse = np.where(lsum[:, 0] > 0, mx[:, 0] + np.log(np.where(lsum[:, 0] > 0, lsum[:, 0], 1)), -np.inf)
    PM = P * keep_drop
    out = PM @ v
    dv = PM.T @ dout
    dP = dout @ v.T * keep_drop
    Dr = (dout * out).sum(axis=1, keepdims=True)
    dS = P * (dP - Dr)
    return out, lse, dS @ k * scale, dS.T @ q * scale, dv


def check(tq, tk, D, causal, masked, p, seed, tf32=False):
    rng = np.random.default_rng(seed)
    q, k, v = rng.standard_normal((tq, D)), rng.standard_normal((tk, D)), rng.standard_normal((tk, D))
    dout = rng.standard_normal((tq, D))
    keep_key = [True] * tk if not masked else [j == 0 or rng.random() > 0.3 for j in range(tk)]
    keep_drop = np.where(rng.random((tq, tk)) >= p, 1.0 / (1.0 - p), 0.0) if p > 0 else np.ones((tq, tk))
    scale = 1.0 / np.sqrt(D)
    r_out, r_lse, r_dq, r_dk, r_dv = reference(q, k, v, dout, keep_key, keep_drop, causal, scale)
    out = np.zeros((tq, D))
    lse = np.zeros(tq)
    for row0 in range(0, tq, FWD_BQ):
        o, l = (forward_block_tf32 if tf32 else forward_block)(q, k, v, keep_key, keep_drop, causal, scale, row0)
        n = min(FWD_BQ, tq - row0)
        out[row0:row0 + n], lse[row0:row0 + n] = o[:n], l[:n]
    dr = (dout * out).sum(axis=1)
    dq_acc = np.zeros((tq, D))
    dk = np.zeros((tk, D))
    dv = np.zeros((tk, D))
    for j0 in range(0, tk, BWD_BK):
        a, b = (backward_block_tf32 if tf32 else backward_block)(q, k, v, dout, lse, dr, keep_key, keep_drop, causal,
                                                                 scale, j0, dq_acc)
        n = min(BWD_BK, tk - j0)
        dk[j0:j0 + n], dv[j0:j0 + n] = a[:n], b[:n]
    dq = dq_acc * scale
    errs = {n: np.max(np.abs(x - y)) if x.size else 0.0 for n, x, y in
            (("out", out, r_out), ("dq", dq, r_dq), ("dk", dk, r_dk), ("dv", dv, r_dv))}
    finite = np.isfinite(r_lse)
    errs["lse"] = np.max(np.abs(lse[finite] - r_lse[finite])) if finite.any() else 0.0
    errs["lse_inf"] = 0.0 if np.array_equal(np.isfinite(lse), finite) else 1.0
    ok = all(e < 1e-9 for e in errs.values())
    print(("tf32 " if tf32 else "16-bit ") + f"Tq {tq:4d} Tk {tk:4d} D {D:3d} causal {causal:d} mask {masked:d} p {p:.1f}: "
          + " ".join(f"{n} {e:.1e}" for n, e in errs.items()) + ("  ok" if ok else "  MISMATCH"))
    return ok


if __name__ == "__main__":
    cases = [(70, 77, 64, False, True, 0.0), (77, 77, 128, True, False, 0.2), (1, 65, 64, True, True, 0.0),
             (100, 37, 64, True, False, 0.0), (33, 130, 128, False, True, 0.3)]
    results = [check(*c, seed=i, tf32=tf32) for tf32 in (False, True) for i, c in enumerate(cases)]
    sys.exit(0 if all(results) else 1)
