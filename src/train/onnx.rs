//! `hebb export RUN --onnx FILE`: a trained network (frozen blocks + classifier) as an ONNX
//! model of standard operators (opset 13), the forward of CHECKPOINT.md:
//!
//! ```text
//! images (N, C, H, W), pixels as the loader gives them (/255)
//!   [Sub mean, Div std]  [Reshape, Sub μ, MatMul Z, Reshape]          (standardise, ZCA)
//!   per block: [BatchNormalization]  [Pad reflect] Conv(forward_weight)  [÷ patch norms]
//!              [pre-triangle] activation  [MaxPool | AveragePool]  [BatchNormalization]
//!   Flatten → Gemm(classifier) → scores (N, K)
//! ```
//!
//! The protobuf messages are the subset of onnx.proto the graph needs, with onnx.proto's field
//! numbers; `prost` encodes them. The exporter reads the network's weights from the GPU after
//! `checkpoint::restore`, so it exports any checkpoint the recipe can load.

use std::collections::HashMap;

use prost::Message;

use crate::error::{HebbError, Result};
use crate::gpu::GpuContext;
use crate::kernels::pool::PoolKind;
use crate::nn::layer::{BnState, HebbLayer};
use crate::nn::network::Network;
use crate::nn::recipe::{Activation, NormKind};

/// The subset of onnx.proto (ONNX 1.x, field numbers as there) the exporter writes.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(string, tag = "3")]
        pub producer_version: String,
        #[prost(string, tag = "6")]
        pub doc_string: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    /// `AttributeType`: FLOAT = 1, INT = 2, STRING = 3, INTS = 7.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    /// `DataType`: FLOAT = 1, INT64 = 7.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, tag = "8")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorTypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorTypeProto {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    /// One of `dim_value` (1) and `dim_param` (2).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
    }
}

use proto::*;

const FLOAT: i32 = 1;
const INT64: i32 = 7;
/// The opset the graph's operators are written for (attributes, not inputs, for ReduceMean's
/// and ReduceL2's axes).
const OPSET: i64 = 13;
/// ONNX IR version 7 goes with opset 13.
const IR_VERSION: i64 = 7;
/// hebb's batch-norm and standardisation ε.
const BN_EPS: f32 = 1e-5;

enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

/// A graph under construction: nodes in order, named initialisers, fresh value names.
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    count: HashMap<&'static str, usize>,
}

impl Builder {
    fn fresh(&mut self, stem: &'static str) -> String {
        let n = self.count.entry(stem).or_default();
        *n += 1;
        format!("{stem}_{n}")
    }

    fn constant(&mut self, stem: &'static str, dims: &[usize], data: Vec<f32>) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            float_data: data,
            int64_data: vec![],
            name: name.clone(),
        });
        name
    }

    fn constant_i64(&mut self, stem: &'static str, data: Vec<i64>) -> String {
        let name = self.fresh(stem);
        self.initializers.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: INT64,
            float_data: vec![],
            int64_data: data,
            name: name.clone(),
        });
        name
    }

    /// Appends `op(inputs)` with `attrs`; returns its (single) output's name.
    fn node(&mut self, op: &'static str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(op);
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = AttributeProto {
                    name: name.to_string(),
                    ..Default::default()
                };
                match a {
                    Attr::Float(f) => (p.f, p.r#type) = (f, 1),
                    Attr::Int(i) => (p.i, p.r#type) = (i, 2),
                    Attr::Str(s) => (p.s, p.r#type) = (s.as_bytes().to_vec(), 3),
                    Attr::Ints(v) => (p.ints, p.r#type) = (v, 7),
                }
                p
            })
            .collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.to_string(),
            attribute,
        });
        out
    }

    /// BatchNormalization at evaluation, y = f_c·(γ_c·x̂ + β_c) (γ = 1, β = 0 without affine
    /// parameters): "batch" (f = 1) divides by √(σ²_c + ε); "modified" (Lagani,
    /// f_c = √((σ²_c + ε)/(mean_k σ²_k + ε))) gives γ_c·(x − μ_c)/√(mean_k σ²_k + ε) + f_c·β_c,
    /// which is BatchNormalization with every channel's variance replaced by the mean variance
    /// and the bias f_c·β_c.
    fn batch_norm(&mut self, ctx: &GpuContext, x: &str, bn: &BnState) -> Result<String> {
        let c = bn.channels;
        let mean = bn.mean.to_f32_vec(ctx)?[..c].to_vec();
        let mut var = bn.var.to_f32_vec(ctx)?[..c].to_vec();
        let (gamma, mut beta) = match &bn.affine {
            Some(a) => {
                let a = a.to_f32_vec(ctx)?;
                (a[..c].to_vec(), a[c..2 * c].to_vec())
            }
            None => (vec![1.0; c], vec![0.0; c]),
        };
        if bn.kind == NormKind::Modified {
            let shared = var.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
            let eps = BN_EPS as f64;
            for (b, &v) in beta.iter_mut().zip(&var) {
                *b = (*b as f64 * ((v as f64 + eps) / (shared + eps)).sqrt()) as f32;
            }
            var = vec![shared as f32; c];
        }
        let scale = self.constant("bn_scale", &[c], gamma);
        let bias = self.constant("bn_bias", &[c], beta);
        let mean = self.constant("bn_mean", &[c], mean);
        let var = self.constant("bn_var", &[c], var);
        Ok(self.node(
            "BatchNormalization",
            &[x, &scale, &bias, &mean, &var],
            vec![("epsilon", Attr::Float(BN_EPS))],
        ))
    }

    /// relu(u − mean over channels)^power (SoftHebb's triangle; power 1 without the Pow).
    fn triangle(&mut self, u: &str, power: f32) -> String {
        let mean = self.node(
            "ReduceMean",
            &[u],
            vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(1))],
        );
        let centred = self.node("Sub", &[u, &mean], vec![]);
        let r = self.node("Relu", &[&centred], vec![]);
        self.power(&r, power)
    }

    fn power(&mut self, x: &str, power: f32) -> String {
        if power == 1.0 {
            return x.to_string();
        }
        let p = self.constant("power", &[], vec![power]);
        self.node("Pow", &[x, &p], vec![])
    }

    /// One Hebbian block (CHECKPOINT.md, step 4).
    fn block(&mut self, ctx: &GpuContext, x: &str, layer: &HebbLayer) -> Result<String> {
        let spec = &layer.spec;
        let s = &layer.shape;
        let g = s.conv;
        let mut x = x.to_string();
        if let Some(bn) = &layer.input_bn {
            x = self.batch_norm(ctx, &x, bn)?;
        }
        // Reflect padding as its own Pad (Conv pads with zeros only).
        let [ph, pw] = g.padding;
        let conv_pads = if g.reflect && (ph > 0 || pw > 0) {
            let pads = self.constant_i64(
                "pads",
                vec![0, 0, ph as i64, pw as i64, 0, 0, ph as i64, pw as i64],
            );
            x = self.node("Pad", &[&x, &pads], vec![("mode", Attr::Str("reflect"))]);
            vec![0, 0, 0, 0]
        } else {
            vec![ph as i64, pw as i64, ph as i64, pw as i64]
        };
        let [kh, kw] = g.kernel;
        let c = spec.channels;
        let conv_attrs = |pads: &[i64]| {
            vec![
                ("kernel_shape", Attr::Ints(vec![kh as i64, kw as i64])),
                (
                    "strides",
                    Attr::Ints(g.stride.iter().map(|&v| v as i64).collect()),
                ),
                ("pads", Attr::Ints(pads.to_vec())),
            ]
        };
        let weights = layer.effective_weights(ctx)?;
        let w = self.constant("forward_weight", &[c, g.in_channels, kh, kw], weights);
        let mut u = self.node("Conv", &[&x, &w], conv_attrs(&conv_pads));
        if spec.unit_norm_input {
            // U = (P/‖P‖)·W̃ᵀ = (P·W̃ᵀ)/‖P‖ per patch; ‖P‖² is a convolution of x² with ones,
            // and a zero patch divides by 1 (as hebb's guard).
            let d = g.in_channels * kh * kw;
            let ones = self.constant("patch_ones", &[1, g.in_channels, kh, kw], vec![1.0; d]);
            let sq = self.node("Mul", &[&x, &x], vec![]);
            let sumsq = self.node("Conv", &[&sq, &ones], conv_attrs(&conv_pads));
            let norm = self.node("Sqrt", &[&sumsq], vec![]);
            let zero = self.constant("zero", &[], vec![0.0]);
            let one = self.constant("one", &[], vec![1.0]);
            let is_zero = self.node("Equal", &[&norm, &zero], vec![]);
            let guarded = self.node("Where", &[&is_zero, &one, &norm], vec![]);
            u = self.node("Div", &[&u, &guarded], vec![]);
        }
        if layer.rule.pre_triangle() {
            u = self.triangle(&u, 1.0);
        }
        let a = match spec.activation {
            Activation::Identity => u,
            Activation::Relu => self.node("Relu", &[&u], vec![]),
            Activation::Tanh => self.node("Tanh", &[&u], vec![]),
            Activation::Logistic => self.node("Sigmoid", &[&u], vec![]),
            Activation::ReluPow { power } => {
                let r = self.node("Relu", &[&u], vec![]);
                self.power(&r, power)
            }
            Activation::Triangle { power } => self.triangle(&u, power),
        };
        let pooled = match s.pool {
            None => a,
            Some(p) => {
                let mut attrs = vec![
                    (
                        "kernel_shape",
                        Attr::Ints(p.kernel.iter().map(|&v| v as i64).collect()),
                    ),
                    (
                        "strides",
                        Attr::Ints(p.stride.iter().map(|&v| v as i64).collect()),
                    ),
                    (
                        "pads",
                        Attr::Ints(vec![
                            p.padding[0] as i64,
                            p.padding[1] as i64,
                            p.padding[0] as i64,
                            p.padding[1] as i64,
                        ]),
                    ),
                ];
                match p.kind {
                    PoolKind::Max => self.node("MaxPool", &[&a], attrs),
                    PoolKind::Avg { count_include_pad } => {
                        attrs.push(("count_include_pad", Attr::Int(count_include_pad as i64)));
                        self.node("AveragePool", &[&a], attrs)
                    }
                }
            }
        };
        match &layer.output_bn {
            Some(bn) => self.batch_norm(ctx, &pooled, bn),
            None => Ok(pooled),
        }
    }
}

fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| match d {
                            Some(v) => Dimension {
                                dim_value: Some(*v as i64),
                                dim_param: None,
                            },
                            None => Dimension {
                                dim_value: None,
                                dim_param: Some("N".into()),
                            },
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// The ONNX model of `net` (weights as restored on the GPU), named after `recipe_name`: input
/// `images` (N, C, H, W), output `scores` (N, K). Errors name what cannot be exported.
pub fn export(ctx: &GpuContext, net: &Network, recipe_name: &str) -> Result<Vec<u8>> {
    let mut b = Builder {
        nodes: vec![],
        initializers: vec![],
        count: HashMap::new(),
    };
    let input = net.input;
    let mut x = "images".to_string();
    if let Some(s) = &net.standardize {
        let c = s.mean.len();
        let mean = b.constant("input_mean", &[1, c, 1, 1], s.mean.clone());
        let std = b.constant("input_std", &[1, c, 1, 1], s.std.clone());
        let centred = b.node("Sub", &[&x, &mean], vec![]);
        x = b.node("Div", &[&centred, &std], vec![]);
    }
    if let Some(z) = &net.zca {
        let d = z.mean.len();
        if d != input.len() {
            return Err(HebbError::Format {
                path: recipe_name.into(),
                message: format!(
                    "ONNX export whitens whole images only; this recipe's ZCA works on {}x{} blocks of its {}x{} images",
                    z.geometry.block[0], z.geometry.block[1], input.height, input.width
                ),
            });
        }
        let flat = b.constant_i64("shape", vec![-1, d as i64]);
        let image = b.constant_i64(
            "shape",
            vec![
                -1,
                input.channels as i64,
                input.height as i64,
                input.width as i64,
            ],
        );
        let mu = b.constant("zca_mean", &[d], z.mean.clone());
        let zm = b.constant("zca", &[d, d], z.matrix.clone());
        let v = b.node("Reshape", &[&x, &flat], vec![]);
        let centred = b.node("Sub", &[&v, &mu], vec![]);
        let white = b.node("MatMul", &[&centred, &zm], vec![]);
        x = b.node("Reshape", &[&white, &image], vec![]);
    }
    for layer in &net.layers {
        x = b.block(ctx, &x, layer)?;
    }
    let k = &net.classifier;
    let flat = b.node("Flatten", &[&x], vec![("axis", Attr::Int(1))]);
    let w = k.w.to_f32_vec(ctx)?[..k.classes * k.features].to_vec();
    let bias = k.b.to_f32_vec(ctx)?[..k.classes].to_vec();
    let w = b.constant("classifier_weight", &[k.classes, k.features], w);
    let bias = b.constant("classifier_bias", &[k.classes], bias);
    let scores = b.node("Gemm", &[&flat, &w, &bias], vec![("transB", Attr::Int(1))]);
    // Name the graph's output `scores`.
    let last = b.nodes.last_mut().expect("the classifier node");
    last.output = vec!["scores".into()];
    debug_assert_eq!(scores, last.name);

    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "hebb".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{recipe_name}: images (N, C, H, W) with pixels scaled as hebb's loader scales them \
             (/255); scores (N, K), the predicted class their first argmax (CHECKPOINT.md)"
        ),
        graph: Some(GraphProto {
            node: b.nodes,
            name: recipe_name.to_string(),
            initializer: b.initializers,
            input: vec![value_info(
                "images",
                &[
                    None,
                    Some(input.channels),
                    Some(input.height),
                    Some(input.width),
                ],
            )],
            output: vec![value_info("scores", &[None, Some(k.classes)])],
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
    };
    Ok(model.encode_to_vec())
}
