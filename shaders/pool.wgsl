// 2-D pooling of NCHW x (B, C, H, W) to (B, C, Ho, Wo), Ho = ⌊(H + 2p − k)/s⌋ + 1, as PyTorch:
//   max_pool: max over the window clipped to the input (padding never wins: it is −∞)
//   avg_pool: sum over the clipped window / divisor, where the divisor counts the window
//             clipped to the padded input (count_include_pad, flags bit 0) or to the input
// Bounds: one invocation per output element e < B·C·Ho·Wo; reads stay inside the input plane
// by the clipping; the launcher checks both extents.

struct PoolParams {
    planes: u32, h: u32, w: u32, ho: u32,
    wo: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, ph: u32, pw: u32, flags: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

struct Window { h0: i32, w0: i32, h1: i32, w1: i32, plane: u32, }

fn window(e: u32) -> Window {
    let ow = e % p.wo;
    let oh = (e / p.wo) % p.ho;
    let plane = e / (p.wo * p.ho);
    let h0 = i32(oh * p.sh) - i32(p.ph);
    let w0 = i32(ow * p.sw) - i32(p.pw);
    return Window(h0, w0, h0 + i32(p.kh), w0 + i32(p.kw), plane);
}

fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn max_pool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.planes * p.ho * p.wo) { return; }
    let win = window(e);
    let base = win.plane * p.h * p.w;
    var best = -3.4028234663852886e38;
    for (var y = max(win.h0, 0); y < min(win.h1, i32(p.h)); y++) {
        for (var z = max(win.w0, 0); z < min(win.w1, i32(p.w)); z++) {
            best = max(best, x[base + u32(y) * p.w + u32(z)]);
        }
    }
    out[e] = best;
}

@compute @workgroup_size(256, 1, 1)
fn avg_pool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.planes * p.ho * p.wo) { return; }
    let win = window(e);
    let base = win.plane * p.h * p.w;
    // The window clipped to the padded input (PyTorch's pool_size).
    let padded = (min(win.h1, i32(p.h + p.ph)) - win.h0) * (min(win.w1, i32(p.w + p.pw)) - win.w0);
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
    let inside = (y1 - y0) * (z1 - z0);
    let divisor = select(inside, padded, (p.flags & 1u) != 0u);
    out[e] = sum / f32(max(divisor, 1));
}
