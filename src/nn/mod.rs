//! Networks of Hebbian blocks and a supervised head, built from a TOML recipe:
//! `recipe` (the format), `layer` (one Hebbian block's forward and learning step on the GPU),
//! `classifier` (linear head, dropout, softmax cross-entropy, SGD/Adam), `zca` (input whitening),
//! `network` (the chain).

pub mod classifier;
pub mod layer;
pub mod network;
pub mod recipe;
pub mod zca;
