//! `curves.png`: a training run's curves, redrawn after every epoch so that an interrupted or
//! running job has its picture too.
//! - classifier loss per epoch (the mean cross-entropy over the epoch's training batches);
//! - classifier accuracy per epoch: training (over the epoch, while it learned), validation
//!   (the held-out items, when the recipe holds some out) and test;
//! - the Hebbian weight-norm trajectory: for each learning layer, the median ‖wᵢ‖ of its
//!   neurons after each Hebbian epoch, with the min and max as thin lines. The x axis counts
//!   Hebbian epochs over all stages in order (a greedy recipe's layers one after another).

use std::path::Path;

use crate::error::Result;
use crate::plot::{Mark, Panel, Series, write_png};
use crate::train::checkpoint::Loaded;
use crate::train::{EpochRecord, WeightNorms, meta_json};

pub const FILE: &str = "curves.png";

/// The epoch history a checkpoint carries in its metadata (`hebb curves`: the figure of a run
/// made before curves were drawn, or of its best checkpoint).
pub fn history_of(ck: &Loaded) -> Result<Vec<EpochRecord>> {
    meta_json(ck, "history")
}

/// Writes the figure of `history` to `path`.
pub fn write(path: &Path, history: &[EpochRecord]) -> Result<()> {
    write_png(path, &figure(history))
}

/// The three panels of a run's history.
pub fn figure(history: &[EpochRecord]) -> Vec<Panel> {
    let classifier: Vec<&EpochRecord> =
        history.iter().filter(|r| r.stage == "classifier").collect();
    let per_epoch = |f: &dyn Fn(&EpochRecord) -> Option<f64>, scale: f64| -> Vec<(f64, f64)> {
        classifier
            .iter()
            .filter_map(|r| f(r).map(|v| ((r.epoch + 1) as f64, scale * v)))
            .collect()
    };
    let loss = Panel {
        title: "classifier loss".into(),
        x_label: "classifier epoch".into(),
        x_whole: true,
        y_label: "mean cross-entropy".into(),
        y_from_zero: true,
        series: vec![Series {
            label: String::new(),
            points: per_epoch(&|r| r.loss, 1.0),
            mark: Mark::Line,
            colour: 0,
        }],
        ..Panel::default()
    };
    let accuracy_series = [
        (
            "train",
            &(|r: &EpochRecord| r.train_accuracy) as &dyn Fn(&EpochRecord) -> Option<f64>,
        ),
        ("validation", &|r: &EpochRecord| r.validation_accuracy),
        ("test", &|r: &EpochRecord| r.test_accuracy),
    ];
    let accuracy = Panel {
        title: "classifier accuracy".into(),
        x_label: "classifier epoch".into(),
        x_whole: true,
        y_label: "accuracy (%)".into(),
        series: accuracy_series
            .iter()
            .enumerate()
            .map(|(colour, (label, f))| Series {
                label: (*label).into(),
                points: per_epoch(*f, 100.0),
                mark: Mark::Line,
                colour,
            })
            .filter(|s| !s.points.is_empty())
            .collect(),
        ..Panel::default()
    };
    // Hebbian epochs in order, 1-based, with each learning layer's norms after it.
    let hebbian: Vec<(f64, &EpochRecord)> = history
        .iter()
        .filter(|r| r.stage != "classifier")
        .enumerate()
        .map(|(k, r)| ((k + 1) as f64, r))
        .collect();
    let mut layers: Vec<usize> = hebbian
        .iter()
        .flat_map(|(_, r)| r.weight_norms.iter().map(|n| n.layer))
        .collect();
    layers.sort_unstable();
    layers.dedup();
    let mut norms = Vec::new();
    for &layer in &layers {
        let of = |f: fn(&WeightNorms) -> f64| -> Vec<(f64, f64)> {
            hebbian
                .iter()
                .flat_map(|(x, r)| {
                    r.weight_norms
                        .iter()
                        .filter(|n| n.layer == layer)
                        .map(move |n| (*x, f(n)))
                })
                .collect()
        };
        norms.push(Series {
            label: format!("layer {layer} median"),
            points: of(|n| n.median),
            mark: Mark::Line,
            colour: layer,
        });
        for edge in [|n: &WeightNorms| n.min, |n: &WeightNorms| n.max] {
            norms.push(Series {
                label: String::new(),
                points: of(edge),
                mark: Mark::Thin,
                colour: layer,
            });
        }
    }
    let spread = norms
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let weight_norms = Panel {
        title: "Hebbian weight norms ‖wᵢ‖ (median, min, max)".into(),
        x_label: "Hebbian epoch (stages in order)".into(),
        x_whole: true,
        y_label: "‖wᵢ‖".into(),
        // Norms that spread over decades (Krotov's, from a small init towards R) on log10.
        log_y: spread.1 > 30.0 * spread.0,
        legend_top: true,
        series: norms,
        ..Panel::default()
    };
    vec![loss, accuracy, weight_norms]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stage: &str, epoch: usize, norms: &[(usize, f64)]) -> EpochRecord {
        let classifier = stage == "classifier";
        EpochRecord {
            stage: stage.into(),
            epoch,
            images: 10,
            seconds: 1.0,
            images_per_s: 10.0,
            lr: None,
            loss: classifier.then_some(1.0 / (epoch + 1) as f64),
            train_accuracy: classifier.then_some(0.5),
            test_accuracy: classifier.then_some(0.25 + 0.1 * epoch as f64),
            validation_accuracy: None,
            weight_norms: norms
                .iter()
                .map(|&(layer, m)| WeightNorms {
                    layer,
                    min: m / 2.0,
                    median: m,
                    mean: m,
                    max: 2.0 * m,
                })
                .collect(),
        }
    }

    /// A greedy two-layer history: layer 0 for two epochs, layer 1 for one, then two classifier
    /// epochs. Hebbian epochs are numbered over the stages; classifier epochs from 1.
    #[test]
    fn the_figure_follows_the_history() {
        let history = [
            record("layer 0 (softhebb)", 0, &[(0, 8.0)]),
            record("layer 0 (softhebb)", 1, &[(0, 4.0)]),
            record("layer 1 (softhebb)", 0, &[(1, 3.0)]),
            record("classifier", 0, &[]),
            record("classifier", 1, &[]),
        ];
        let [loss, accuracy, norms] = <[Panel; 3]>::try_from(figure(&history)).unwrap();
        assert_eq!(loss.series[0].points, vec![(1.0, 1.0), (2.0, 0.5)]);
        // No validation split: only the train and test curves, in percent.
        let labels: Vec<&str> = accuracy.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["train", "test"]);
        assert_eq!(accuracy.series[1].points, vec![(1.0, 25.0), (2.0, 35.0)]);
        // Per layer: median, min, max.
        assert_eq!(norms.series.len(), 6);
        assert_eq!(norms.series[0].points, vec![(1.0, 8.0), (2.0, 4.0)]);
        assert_eq!(norms.series[2].points, vec![(1.0, 16.0), (2.0, 8.0)]);
        assert_eq!(norms.series[3].points, vec![(3.0, 3.0)]);
        // Norms from 1.5 to 16 share one decade scale; a spread past 30x goes to log10.
        assert!(!norms.log_y);
        let wide = [
            record("layer 0 (krotov)", 0, &[(0, 0.01)]),
            record("layer 0 (krotov)", 1, &[(0, 5.0)]),
        ];
        assert!(figure(&wide)[2].log_y);
    }
}
