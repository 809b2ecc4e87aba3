// Fused projection and row-wise competition: the first half of a FastHebb step in one pass,
// so that U need not reach memory when only the competition's output feeds the update.
//
//   U = X·Wᵀ (+ b)             X: N x D rows (row n = a sample or a conv position), W: C x D,
//                              b: C (flag bit 1)
//   Y, G = competition(U, T)   row by row, with the modes and the formulas of hebbian.wgsl's
//                              `competition` (0 relu, 1 tanh, 5 softmax, 6 SoftKrotov,
//                              7 hard WTA, 8 Krotov, 10 logistic, 11 identity, 12 relu only,
//                              13 triangle); T (N x C) when flag bit 0 is set
//   S[w, i] = Σ_{n among workgroup w's rows} G[n, i]·U[n, i]   (flag bit 4), the partial
//                              column sums that the launcher reduces to colsum(G ⊙ U), the
//                              decay factor of SoftHebb's and Krotov's rules
// G is always written; U (flag bit 2) and Y (flag bit 3) only when asked, so a training step
// writes G and the partials (ceil(N / BM) x C) instead of U, Y and G.
//
// Layout: a workgroup owns BM = TY·RM whole rows, so every row reduction (max, argmax, Σ,
// ranks, mean) happens in workgroup memory, as a tree over the TX invocations of a row. Invocation (tx, ty) of the TX x TY workgroup holds
// in registers rows ty + TY·r (r < RM) and the four-column groups 4·(tx + TX·q) + 0..3
// (q < NQ) of U: C ≤ 4·TX·NQ. K = D is walked in steps of BK through workgroup tiles of X
// (BM x BK) and W (4·TX·NQ x BK); each inner step is RM scalar and NQ vec4 loads for RM·NQ
// vec4 FMAs.
//
// Bounds: X is read only at [n < N, d < D], W at [i < C, d < D], b and T at i < C, n < N;
// outputs are written only at n < N, i < C, and S at [w < ceil(N / BM), i < C]; the launcher
// checks each bound tensor holds that extent.

// HebbParams, the modes and their formulas come from competition_modes.wgsl, prepended.

@group(0) @binding(0) var<uniform> p: HebbParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> teacher: array<f32>;
@group(0) @binding(5) var<storage, read_write> u_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> y_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> g_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> stats: array<f32>;

override TX: u32 = 8u;
override TY: u32 = 32u;
override RM: u32 = 2u;
override NQ: u32 = 3u;
override BK: u32 = 16u;
// Register blocks: RM ≤ 4, NQ ≤ 8, RM·NQ ≤ 16 (the launcher's plans keep to these).
const MAX_RM: u32 = 4u;
const MAX_NQ: u32 = 8u;
const MAX_SLOTS: u32 = 16u;
const NONE: u32 = 0xffffffffu;

// x_tile[kk·BM + mm] = X[m0 + mm, k0 + kk];  w_tile[kk·TX·NQ + g][j] = W[4·g + j, k0 + kk].
var<workgroup> x_tile: array<f32, BK * TY * RM>;
var<workgroup> w_tile: array<vec4<f32>, BK * TX * NQ>;
// Row reductions: one partial per (row, tx); column partials: four columns per invocation.
var<workgroup> red_v: array<f32, TY * RM * TX>;
var<workgroup> red_i: array<u32, TY * RM * TX>;
var<workgroup> col_red: array<vec4<f32>, TX * TY>;

fn flag(bit: u32) -> bool { return (p.flags & (1u << bit)) != 0u; }

// Entry (v, i) ranks before (bv, bi): larger value, then smaller index; NONE ranks last.
fn ranks_before(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

// Row reductions over the TX invocations sharing each of this invocation's rows: a tree of
// log2(TX) halving steps in workgroup memory (TX is a power of two). Every invocation of the
// workgroup calls these together (they contain barriers).
fn row_sums(v: array<f32, MAX_RM>, tx: u32, ty: u32) -> array<f32, MAX_RM> {
    for (var r = 0u; r < RM; r++) { red_v[(ty + TY * r) * TX + tx] = v[r]; }
    workgroupBarrier();
    for (var stride = TX / 2u; stride > 0u; stride = stride / 2u) {
        if (tx < stride) {
            for (var r = 0u; r < RM; r++) {
                let at = (ty + TY * r) * TX + tx;
                red_v[at] += red_v[at + stride];
            }
        }
        workgroupBarrier();
    }
    var out: array<f32, MAX_RM>;
    for (var r = 0u; r < RM; r++) { out[r] = red_v[(ty + TY * r) * TX]; }
    workgroupBarrier();
    return out;
}

struct Best { v: array<f32, MAX_RM>, i: array<u32, MAX_RM>, }

// The first-ranked (value, index) per row. ranks_before is a strict total order with NONE
// last, so the tree finds the same entry as a left-to-right scan.
fn row_best(b: Best, tx: u32, ty: u32) -> Best {
    for (var r = 0u; r < RM; r++) {
        red_v[(ty + TY * r) * TX + tx] = b.v[r];
        red_i[(ty + TY * r) * TX + tx] = b.i[r];
    }
    workgroupBarrier();
    for (var stride = TX / 2u; stride > 0u; stride = stride / 2u) {
        if (tx < stride) {
            for (var r = 0u; r < RM; r++) {
                let at = (ty + TY * r) * TX + tx;
                let other = at + stride;
                if (ranks_before(red_v[other], red_i[other], red_v[at], red_i[at])) {
                    red_v[at] = red_v[other];
                    red_i[at] = red_i[other];
                }
            }
        }
        workgroupBarrier();
    }
    var out: Best;
    for (var r = 0u; r < RM; r++) {
        out.v[r] = red_v[(ty + TY * r) * TX];
        out.i[r] = red_i[(ty + TY * r) * TX];
    }
    workgroupBarrier();
    return out;
}

// Grid: ceil(N / BM) workgroups, laid out 2-D when over the per-dimension limit (the
// workgroups past the last row write nothing).
@compute @workgroup_size(TX, TY, 1)
fn projection_competition(@builtin(workgroup_id) wg: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let block = wg.y * nwg.x + wg.x;
    let bm = TY * RM;
    let cp4 = TX * NQ;
    let m0 = block * bm;
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * TX + tx;
    let threads = TX * TY;

    // U block in registers: acc[r·NQ + q] = U[row r, columns 4·(tx + TX·q) + 0..3].
    var acc: array<vec4<f32>, MAX_SLOTS>;
    var wv: array<vec4<f32>, MAX_NQ>;
    for (var k0 = 0u; k0 < p.d; k0 += BK) {
        // Consecutive invocations walk d, the contiguous dimension of X and W.
        for (var e = tid; e < bm * BK; e += threads) {
            let kk = e % BK;
            let mm = e / BK;
            let row = m0 + mm;
            let k = k0 + kk;
            x_tile[kk * bm + mm] = select(0.0, x[row * p.d + k], row < p.n && k < p.d);
        }
        for (var e = tid; e < 4u * cp4 * BK; e += threads) {
            let kk = e % BK;
            let i = e / BK;
            let k = k0 + kk;
            w_tile[kk * cp4 + i / 4u][i % 4u] = select(0.0, w[i * p.d + k], i < p.c && k < p.d);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            for (var q = 0u; q < NQ; q++) { wv[q] = w_tile[kk * cp4 + tx + TX * q]; }
            for (var r = 0u; r < RM; r++) {
                let xv = vec4<f32>(x_tile[kk * bm + ty + TY * r]);
                for (var q = 0u; q < NQ; q++) {
                    acc[r * NQ + q] = fma(xv, wv[q], acc[r * NQ + q]);
                }
            }
        }
        workgroupBarrier();
    }

    let has_bias = flag(1u);
    // Bias, and the row statistics every mode needs: the first argmax of u, max(a·u) and
    // Σ u over the valid columns (padding columns stay out of every reduction).
    var top: Best;
    var shift: Best;
    var sums: array<f32, MAX_RM>;
    for (var r = 0u; r < RM; r++) {
        top.i[r] = NONE;
        shift.i[r] = NONE;
        for (var q = 0u; q < NQ; q++) {
            for (var j = 0u; j < 4u; j++) {
                let col = 4u * (tx + TX * q) + j;
                if (col >= p.c) { break; }
                if (has_bias) { acc[r * NQ + q][j] += bias[col]; }
                let u = acc[r * NQ + q][j];
                if (ranks_before(u, col, top.v[r], top.i[r])) { top.v[r] = u; top.i[r] = col; }
                if (ranks_before(p.a * u, col, shift.v[r], shift.i[r])) {
                    shift.v[r] = p.a * u;
                    shift.i[r] = col;
                }
                sums[r] += u;
            }
        }
    }
    let mode = p.mode;
    var total: array<f32, MAX_RM>;
    var kth: array<u32, MAX_RM>;
    if (mode == MODE_SOFTMAX || mode == MODE_SOFT_KROTOV || mode == MODE_HARD || mode == MODE_KROTOV) {
        top = row_best(top, tx, ty);
    }
    if (mode == MODE_SOFTMAX || mode == MODE_SOFT_KROTOV) {
        shift = row_best(shift, tx, ty);
        var part: array<f32, MAX_RM>;
        for (var r = 0u; r < RM; r++) {
            for (var q = 0u; q < NQ; q++) {
                for (var j = 0u; j < 4u; j++) {
                    let col = 4u * (tx + TX * q) + j;
                    if (col >= p.c) { break; }
                    part[r] += softmax_exp(acc[r * NQ + q][j], p.a, shift.v[r]);
                }
            }
        }
        total = row_sums(part, tx, ty);
    }
    if (mode == MODE_TRIANGLE) {
        total = row_sums(sums, tx, ty);
    }
    if (mode == MODE_KROTOV) {
        // The k-th entry in rank order (duplicates counted, ties by index): k passes, each
        // taking the first-ranked entry after the previous pass's.
        var prev = top;
        for (var pass_ = 1u; pass_ < p.k; pass_++) {
            var cand: Best;
            for (var r = 0u; r < RM; r++) {
                cand.i[r] = NONE;
                for (var q = 0u; q < NQ; q++) {
                    for (var j = 0u; j < 4u; j++) {
                        let col = 4u * (tx + TX * q) + j;
                        if (col >= p.c) { break; }
                        let u = acc[r * NQ + q][j];
                        let after = ranks_after(u, col, prev.v[r], prev.i[r]);
                        if (after && ranks_before(u, col, cand.v[r], cand.i[r])) {
                            cand.v[r] = u;
                            cand.i[r] = col;
                        }
                    }
                }
            }
            prev = row_best(cand, tx, ty);
        }
        kth = prev.i;
    }

    let with_teacher = flag(0u);
    let write_u = flag(2u);
    let write_y = flag(3u);
    let with_stats = flag(4u);
    var col_part: array<vec4<f32>, MAX_NQ>;
    for (var r = 0u; r < RM; r++) {
        let row = m0 + ty + TY * r;
        if (row >= p.n) { continue; }
        for (var q = 0u; q < NQ; q++) {
            for (var j = 0u; j < 4u; j++) {
                let col = 4u * (tx + TX * q) + j;
                if (col >= p.c) { break; }
                let idx = row * p.c + col;
                let u = acc[r * NQ + q][j];
                var y: f32;
                var g: f32;
                switch (mode) {
                    case MODE_SOFTMAX, MODE_SOFT_KROTOV: {
                        y = softmax_y(mode, softmax_exp(u, p.a, shift.v[r]) / total[r], col == top.i[r]);
                        g = y;
                    }
                    case MODE_HARD, MODE_KROTOV: {
                        y = hard_y(mode, col == top.i[r], col == kth[r], p.a);
                        g = y;
                    }
                    case MODE_TRIANGLE: {
                        y = triangle_y(u, total[r] / f32(p.c), p.a);
                        g = y;
                    }
                    default: {
                        // The pointwise modes (the launcher refuses the teacher mode).
                        y = pointwise_y(mode, u);
                        g = pointwise_g(mode, y, select(1.0, teacher[idx], with_teacher));
                    }
                }
                if (write_u) { u_out[idx] = u; }
                if (write_y) { y_out[idx] = y; }
                g_out[idx] = g;
                col_part[q][j] += g * u;
            }
        }
    }
    if (with_stats) {
        // Σ over the workgroup's rows, column group by column group: the TY invocations
        // sharing tx meet in col_red, and row ty = 0 writes the sum.
        for (var q = 0u; q < NQ; q++) {
            col_red[ty * TX + tx] = col_part[q];
            workgroupBarrier();
            if (ty == 0u && m0 < p.n) {
                var s = vec4<f32>(0.0);
                for (var t = 0u; t < TY; t++) { s += col_red[t * TX + tx]; }
                for (var j = 0u; j < 4u; j++) {
                    let col = 4u * (tx + TX * q) + j;
                    if (col < p.c) { stats[block * p.c + col] = s[j]; }
                }
            }
            workgroupBarrier();
        }
    }
}
