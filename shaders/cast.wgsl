// Casts between f32 and f16 in core WGSL (no SHADER_F16): f16 tensors are stored two per u32,
// element 2i in the low half, exactly the byte layout of a little-endian array<f16>.
//   f32_to_f16_packed: h[i] = f16(x[i])   one invocation per u32 word (two elements)
//   f16_packed_to_f32: y[i] = f32(h[i])   one invocation per u32 word

// Bounds: element i < n, word w < ceil(n / 2); the launcher checks both tensors hold n.

struct CastParams {
    n: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: CastParams;
@group(0) @binding(1) var<storage, read> src_f32: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst_f16: array<u32>;
@group(0) @binding(3) var<storage, read> src_f16: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst_f32: array<f32>;

fn word(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn f32_to_f16_packed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let w = word(wg, nwg, lid);
    let i = 2u * w;
    if (i >= p.n) { return; }
    let lo = src_f32[i];
    // The pad half of an odd-length tensor's last word is written as zero.
    let hi = select(0.0, src_f32[min(i + 1u, p.n - 1u)], i + 1u < p.n);
    dst_f16[w] = pack2x16float(vec2<f32>(lo, hi));
}

@compute @workgroup_size(256, 1, 1)
fn f16_packed_to_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let w = word(wg, nwg, lid);
    let i = 2u * w;
    if (i >= p.n) { return; }
    let v = unpack2x16float(src_f16[w]);
    dst_f32[i] = v.x;
    if (i + 1u < p.n) { dst_f32[i + 1u] = v.y; }
}
