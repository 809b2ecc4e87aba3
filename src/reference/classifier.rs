//! Softmax cross-entropy, Krotov & Hopfield's tanh power loss and correctness in float64.

/// (loss per row, gradient scale·(softmax − onehot)).
pub fn softmax_xent(z: &[f64], labels: &[u32], k: usize, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let mut loss = Vec::with_capacity(labels.len());
    let mut grad = vec![0.0; z.len()];
    for (n, &label) in labels.iter().enumerate() {
        let row = &z[n * k..(n + 1) * k];
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let total: f64 = row.iter().map(|v| (v - m).exp()).sum();
        loss.push(total.ln() - (row[label as usize] - m));
        for j in 0..k {
            let q = (row[j] - m).exp() / total;
            grad[n * k + j] = scale * (q - if j == label as usize { 1.0 } else { 0.0 });
        }
    }
    (loss, grad)
}

/// 1 where the first argmax of the row is its label.
pub fn correct(z: &[f64], labels: &[u32], k: usize) -> Vec<f64> {
    labels
        .iter()
        .enumerate()
        .map(|(n, &label)| {
            let row = &z[n * k..(n + 1) * k];
            let mut best = 0;
            for j in 1..k {
                if row[j] > row[best] {
                    best = j;
                }
            }
            (best == label as usize) as u8 as f64
        })
        .collect()
}

/// (loss per row, gradient scale·∂loss/∂z) of c = tanh(β·z), t = ±1, loss = Σ_k |c − t|^m.
pub fn tanh_power(
    z: &[f64],
    labels: &[u32],
    k: usize,
    scale: f64,
    beta: f64,
    power: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut loss = Vec::with_capacity(labels.len());
    let mut grad = vec![0.0; z.len()];
    for (n, &label) in labels.iter().enumerate() {
        let mut total = 0.0;
        for j in 0..k {
            let c = (beta * z[n * k + j]).tanh();
            let d = c - if j == label as usize { 1.0 } else { -1.0 };
            total += d.abs().powf(power);
            grad[n * k + j] =
                scale * power * d.abs().powf(power - 1.0) * d.signum() * beta * (1.0 - c * c);
        }
        loss.push(total);
    }
    (loss, grad)
}
