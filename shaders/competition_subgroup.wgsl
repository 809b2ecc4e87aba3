// Row-wise competition, subgroup variant (needs SUBGROUP): the same modes, parameters and
// outputs as `competition` in hebbian.wgsl (modes named in competition_modes.wgsl), with one workgroup per
// row instead of one invocation per row. The WG invocations of a row's workgroup form one
// subgroup (the launcher sets WG to at most the adapter's minimum subgroup size), walk the
// row's C entries with stride WG, and combine their partial results with subgroupAdd,
// subgroupMax and subgroupMin. Neighbouring invocations read neighbouring entries, so a GPU
// coalesces the loads that the per-row kernel makes C elements apart; a row's sums finish in
// log2(WG) shuffles instead of a C-long serial chain.
//
// Results equal the per-row kernel's except for the order of the sums (modes 3, 4, 5, 6, 13:
// each lane sums its strided share, then the subgroup adds the partials): the rankings (first
// index wins among equal values, duplicates count toward k) are exact.
//
// Bounds: row < n (workgroups past the last row return before any access), i < c; the
// launcher checks every bound tensor holds n·c.

// HebbParams, the modes and their formulas come from competition_modes.wgsl, prepended.

@group(0) @binding(0) var<uniform> p: HebbParams;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(4) var<storage, read_write> out0: array<f32>;
@group(0) @binding(5) var<storage, read_write> out1: array<f32>;

// Invocations per row: at most the minimum subgroup size, so a workgroup is one subgroup.
override WG: u32 = 8u;
const NO_INDEX: u32 = 0xffffffffu;
const LOWEST: f32 = -3.4028234663852886e38;
// −inf (not writable as a WGSL literal): what a lane without candidates reports, so a real
// −inf entry still ranks (the index reduction counts only lanes that found one).
fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u); }

fn teacher(base: u32, i: u32) -> f32 {
    return select(1.0, in1[base + i], (p.flags & 1u) != 0u);
}
fn row_value(base: u32, i: u32, with_teacher: bool) -> f32 {
    var v = in0[base + i];
    if (with_teacher) { v *= teacher(base, i); }
    return v;
}

struct Ranked { value: f32, index: u32, }

// Value and first index of rank r (as `kth_largest` in hebbian.wgsl): each of the r passes
// finds every lane's next entry in the order (value descending, index ascending), then the
// subgroup's largest value and the smallest index holding it. O(r·C / WG) per lane.
fn kth_largest(base: u32, r: u32, with_teacher: bool, lane: u32) -> Ranked {
    var prev = Ranked(0.0, 0u);
    for (var pass_ = 0u; pass_ < r; pass_++) {
        var found = false;
        var best = Ranked(0.0, 0u);
        for (var i = lane; i < p.c; i += WG) {
            let v = row_value(base, i, with_teacher);
            let after = pass_ == 0u || ranks_after(v, i, prev.value, prev.index);
            if (after && (!found || v > best.value)) {
                best = Ranked(v, i);
                found = true;
            }
        }
        let value = subgroupMax(select(neg_inf(), best.value, found));
        let index = subgroupMin(select(NO_INDEX, best.index, found && best.value == value));
        prev = Ranked(value, index);
    }
    return prev;
}

// Grid: one workgroup per row, rows = wg.y * nwg.x + wg.x (a 2-D grid past 65535 rows).
@compute @workgroup_size(WG, 1, 1)
fn competition_subgroup(@builtin(workgroup_id) wg: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lane: u32) {
    let row = wg.y * nwg.x + wg.x;
    // Uniform across the workgroup, so the subgroup operations below stay in uniform control.
    if (row >= p.n) { return; }
    let base = row * p.c;
    switch (p.mode) {
        case MODE_KWTA: {
            let kth = kth_largest(base, p.k, true, lane).value;
            for (var i = lane; i < p.c; i += WG) {
                let t = teacher(base, i);
                let y = kwta_y(in0[base + i] * t, kth);
                out0[base + i] = y;
                out1[base + i] = y * t;
            }
        }
        case MODE_SOFT_EXP, MODE_SOFT_POW: {
            var part = 0.0;
            for (var i = lane; i < p.c; i += WG) {
                let e = soft_share(p.mode, in0[base + i], p.a) * teacher(base, i);
                out0[base + i] = e;
                part += e;
            }
            let g = guard(subgroupAdd(part));
            for (var i = lane; i < p.c; i += WG) {
                let y = out0[base + i] / g;
                out0[base + i] = y;
                out1[base + i] = y * teacher(base, i);
            }
        }
        case MODE_SOFTMAX, MODE_SOFT_KROTOV: {
            let top = kth_largest(base, 1u, false, lane);
            let winner = top.index;
            // max_i a·u_i: a·max u for a > 0 (rounding is monotone), else a pass of its own.
            var shift = p.a * top.value;
            if (p.a < 0.0) {
                var m = LOWEST;
                for (var i = lane; i < p.c; i += WG) { m = max(m, p.a * in0[base + i]); }
                shift = subgroupMax(m);
            }
            var part = 0.0;
            for (var i = lane; i < p.c; i += WG) {
                let e = softmax_exp(in0[base + i], p.a, shift);
                out0[base + i] = e;
                part += e;
            }
            let total = subgroupAdd(part);
            for (var i = lane; i < p.c; i += WG) {
                let y = softmax_y(p.mode, out0[base + i] / total, i == winner);
                out0[base + i] = y;
                out1[base + i] = y;
            }
        }
        case MODE_HARD, MODE_KROTOV: {
            let winner = kth_largest(base, 1u, false, lane).index;
            var kth = p.c;
            if (p.mode == MODE_KROTOV) { kth = kth_largest(base, p.k, false, lane).index; }
            for (var i = lane; i < p.c; i += WG) {
                let y = hard_y(p.mode, i == winner, i == kth, p.a);
                out0[base + i] = y;
                out1[base + i] = y;
            }
        }
        case MODE_TRIANGLE: {
            var part = 0.0;
            for (var i = lane; i < p.c; i += WG) { part += in0[base + i]; }
            let mean = subgroupAdd(part) / f32(p.c);
            for (var i = lane; i < p.c; i += WG) {
                let y = triangle_y(in0[base + i], mean, p.a);
                out0[base + i] = y;
                out1[base + i] = y;
            }
        }
        default: {
            // The pointwise modes.
            for (var i = lane; i < p.c; i += WG) {
                let y = pointwise_y(p.mode, in0[base + i]);
                out0[base + i] = y;
                out1[base + i] = pointwise_g(p.mode, y, teacher(base, i));
            }
        }
    }
}
