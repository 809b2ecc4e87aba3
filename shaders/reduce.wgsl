// Reductions over a row-major [rows, cols] f32 matrix.
//   op 0: sum    op 1: max    op 2: max |x|    op 3: sum x²    op 4: sum x ⊙ x2 (col_reduce
//   only; x2 has the shape of x)    op 5: sum |x|
//   row_reduce: out[r] = op_{c} x[r, c]        (one workgroup per row)
//   col_reduce: out[chunk, c] = op_{r in chunk} x[r, c]
//               (rows split into chunks of `rows_per_chunk`; the launcher runs it again on the
//                partials when there is more than one chunk)
// A global max |x| is a row_reduce of the tensor viewed as [chunks, chunk_len], then of the
// chunk results viewed as [1, chunks].

// Bounds: x is read only at offset + i with i < len <= rows * cols, out written only at
// [chunk < chunks, c < cols] or [r < rows]; the launcher checks both extents.

struct ReduceParams {
    rows: u32, cols: u32, op: u32, rows_per_chunk: u32,
    // elements of x from `offset` that exist (row_reduce's last row may be short)
    offset: u32, len: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// Second operand of op 4 (bound by col_reduce; the same buffer as x for other ops).
@group(0) @binding(3) var<storage, read> x2: array<f32>;

override WG: u32 = 256u;
var<workgroup> scratch: array<f32, WG>;

fn identity() -> f32 {
    // -inf is not representable as a WGSL literal; -f32::MAX is the identity for max over
    // finite inputs, and 0 for sum and for max |x|.
    return select(0.0, -3.4028234663852886e38, p.op == 1u);
}

fn lift(v: f32) -> f32 {
    switch (p.op) {
        case 2u, 5u: { return abs(v); }
        case 3u: { return v * v; }
        default: { return v; }
    }
}

fn combine(u: f32, v: f32) -> f32 {
    return select(max(u, v), u + v, p.op == 0u || p.op >= 3u);
}

// Grid: (min(rows, 65535), ceil(rows / 65535), 1); workgroup (WG, 1, 1).
@compute @workgroup_size(WG, 1, 1)
fn row_reduce(@builtin(workgroup_id) wg: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = wg.y * nwg.x + wg.x;
    var acc = identity();
    if (row < p.rows) {
        let first = row * p.cols;
        let end = min(first + p.cols, p.len);
        for (var i = first + lid; i < end; i += WG) {
            acc = combine(acc, lift(x[p.offset + i]));
        }
    }
    scratch[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { scratch[lid] = combine(scratch[lid], scratch[lid + s]); }
        workgroupBarrier();
    }
    if (lid == 0u && row < p.rows) { out[row] = scratch[0]; }
}

// Workgroup (16, 16): 16 columns, 16 lanes striding over the chunk's rows.
// Grid: (ceil(cols / 16), chunks, 1).
@compute @workgroup_size(16, 16, 1)
fn col_reduce(@builtin(workgroup_id) wg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = wg.x * 16u + lid.x;
    let r0 = wg.y * p.rows_per_chunk;
    let r1 = min(r0 + p.rows_per_chunk, p.rows);
    var acc = identity();
    if (col < p.cols) {
        for (var r = r0 + lid.y; r < r1; r += 16u) {
            let i = p.offset + r * p.cols + col;
            var v = lift(x[i]);
            if (p.op == 4u) { v = x[i] * x2[i]; }
            acc = combine(acc, v);
        }
    }
    let slot = lid.y * 16u + lid.x;
    scratch[slot] = acc;
    workgroupBarrier();
    for (var s = 8u; s > 0u; s >>= 1u) {
        if (lid.y < s) { scratch[slot] = combine(scratch[slot], scratch[slot + s * 16u]); }
        workgroupBarrier();
    }
    if (lid.y == 0u && col < p.cols) { out[wg.y * p.cols + col] = scratch[lid.x]; }
}
