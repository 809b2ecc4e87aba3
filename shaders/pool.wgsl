// 2-D pooling of NCHW x (B, C, H, W) to (B, C, Ho, Wo), Ho = ⌊(H + 2p − k)/s⌋ + 1, as PyTorch:
//   max_pool: max over the window clipped to the input (padding never wins: it is −∞)
//   avg_pool: sum over the clipped window / divisor, where the divisor counts the window
//             clipped to the padded input (count_include_pad, flags bit 0) or to the input
//   max_pool_indexed: max_pool, and the argmax's index y·W + z in its plane (the first of equal
//             maxima in row-major window order, as PyTorch) for the backward pass, stored as
//             f32 (exact: the launcher requires H·W ≤ 2^24)
// The backward passes (fine-tuning) gather: one invocation per input element (y, z) sums the
// output gradients dy of the windows that cover it,
//   max_pool_backward: dx[y, z] = Σ dy[o] over windows o whose argmax is (y, z)
//   avg_pool_backward: dx[y, z] = Σ dy[o] / divisor(o) over windows o covering (y, z)
// (the covering windows: oh with oh·sh − ph ≤ y < oh·sh − ph + kh, the same for columns).
// Bounds: forward passes: one invocation per output element e < B·C·Ho·Wo, reads inside the
// input plane by the clipping; backward passes: one per input element e < B·C·H·W, reading
// the outputs oh < Ho, ow < Wo of its plane; the launcher checks every extent.

struct PoolParams {
    planes: u32, h: u32, w: u32, ho: u32,
    wo: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, ph: u32, pw: u32, flags: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

struct Window { h0: i32, w0: i32, h1: i32, w1: i32, plane: u32, }

fn window(e: u32) -> Window {
    let ow = e % p.wo;
    let oh = (e / p.wo) % p.ho;
    let plane = e / (p.wo * p.ho);
    let h0 = i32(oh * p.sh) - i32(p.ph);
    let w0 = i32(ow * p.sw) - i32(p.pw);
    return Window(h0, w0, h0 + i32(p.kh), w0 + i32(p.kw), plane);
}

// The divisor of window `win`'s average: the window clipped to the padded input (PyTorch's
// count_include_pad, flags bit 0) or to the input.
fn avg_divisor(win: Window) -> f32 {
    let padded = (min(win.h1, i32(p.h + p.ph)) - win.h0) * (min(win.w1, i32(p.w + p.pw)) - win.w0);
    let inside = (min(win.h1, i32(p.h)) - max(win.h0, 0)) * (min(win.w1, i32(p.w)) - max(win.w0, 0));
    return f32(max(select(inside, padded, (p.flags & 1u) != 0u), 1));
}

// The first output row (or column) whose window covers input coordinate y of a dimension with
// kernel k, stride s and padding q: ⌈(y + q − k + 1)/s⌉, at least 0.
fn first_cover(y: u32, k: u32, s: u32, q: u32) -> u32 {
    let lo = i32(y + q) - i32(k) + 1;
    return u32(max((lo + i32(s) - 1) / i32(s), 0));
}

fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

struct Max { value: f32, index: u32, }

// The window's maximum and the index y·W + z of its first occurrence.
fn window_max(win: Window) -> Max {
    let base = win.plane * p.h * p.w;
    var best = Max(-3.4028234663852886e38, 0u);
    var first = true;
    for (var y = max(win.h0, 0); y < min(win.h1, i32(p.h)); y++) {
        for (var z = max(win.w0, 0); z < min(win.w1, i32(p.w)); z++) {
            let i = u32(y) * p.w + u32(z);
            let v = x[base + i];
            if (first || v > best.value) { best = Max(v, i); first = false; }
        }
    }
    return best;
}

@compute @workgroup_size(256, 1, 1)
fn max_pool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.planes * p.ho * p.wo) { return; }
    out[e] = window_max(window(e)).value;
}

@compute @workgroup_size(256, 1, 1)
fn max_pool_indexed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.planes * p.ho * p.wo) { return; }
    let m = window_max(window(e));
    out[e] = m.value;
    argmax[e] = f32(m.index);
}

@compute @workgroup_size(256, 1, 1)
fn avg_pool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.planes * p.ho * p.wo) { return; }
    let win = window(e);
    let base = win.plane * p.h * p.w;
    let y0 = max(win.h0, 0);
    let y1 = min(win.h1, i32(p.h));
    let z0 = max(win.w0, 0);
    let z1 = min(win.w1, i32(p.w));
    var sum = 0.0;
    for (var y = y0; y < y1; y++) {
        for (var z = z0; z < z1; z++) {
            sum += x[base + u32(y) * p.w + u32(z)];
        }
    }
    out[e] = sum / avg_divisor(win);
}

// One input element of the backward passes: its plane, row and column.
struct Cell { plane: u32, y: u32, z: u32, }

fn cell(e: u32) -> Cell {
    return Cell(e / (p.h * p.w), (e / p.w) % p.h, e % p.w);
}

@compute @workgroup_size(256, 1, 1)
fn max_pool_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.planes * p.h * p.w) { return; }
    let at = cell(e);
    let index = at.y * p.w + at.z;
    var sum = 0.0;
    for (var oh = first_cover(at.y, p.kh, p.sh, p.ph); oh < p.ho && oh * p.sh <= at.y + p.ph; oh++) {
        for (var ow = first_cover(at.z, p.kw, p.sw, p.pw); ow < p.wo && ow * p.sw <= at.z + p.pw; ow++) {
            let o = (at.plane * p.ho + oh) * p.wo + ow;
            if (u32(argmax[o]) == index) { sum += dy[o]; }
        }
    }
    dx[e] = sum;
}

@compute @workgroup_size(256, 1, 1)
fn avg_pool_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.planes * p.h * p.w) { return; }
    let at = cell(e);
    var sum = 0.0;
    for (var oh = first_cover(at.y, p.kh, p.sh, p.ph); oh < p.ho && oh * p.sh <= at.y + p.ph; oh++) {
        for (var ow = first_cover(at.z, p.kw, p.sw, p.pw); ow < p.wo && ow * p.sw <= at.z + p.pw; ow++) {
            let o = (at.plane * p.ho + oh) * p.wo + ow;
            sum += dy[o] / avg_divisor(window(o));
        }
    }
    dx[e] = sum;
}
