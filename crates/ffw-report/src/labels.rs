//! How numbers and datasets read in tables, figures and the index: as the paper writes them.
use ffw_results::DataPoint;

/// Up to 4 decimals, trailing zeros dropped: 10, 0.995, 0.0167.
pub fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Epochs of training; a fraction of the first epoch as the paper writes it (1/60).
pub fn epochs_label(x: f64) -> String {
    let inverse = 1.0 / x;
    if x < 1.0 && (inverse - inverse.round()).abs() < 1e-6 {
        format!("1/{}", inverse.round())
    } else {
        num(x)
    }
}

/// The benchmark's name as the paper writes it.
pub fn dataset_name(name: &str) -> &str {
    match name {
        "biased_mnist" => "Biased MNIST",
        "multi_color_mnist" => "Multi-Color MNIST",
        "corrupted_cifar10" => "Corrupted CIFAR-10",
        "celeba" => "CelebA",
        other => other,
    }
}

/// A dataset setting's symbol: ρ for `rho`, the name otherwise.
pub fn param_name(name: &str) -> &str {
    match name {
        "rho" => "ρ",
        other => other,
    }
}

/// The dataset's varied settings, `ρ = 0.99`; none when it has none.
pub fn params_label(data: &DataPoint) -> Option<String> {
    let parts: Vec<String> = data
        .params
        .iter()
        .map(|(k, v)| format!("{} = {}", param_name(k), num(*v)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The dataset with its settings, `Biased MNIST, ρ = 0.99`.
pub fn data_label(data: &DataPoint) -> String {
    let name = dataset_name(&data.name);
    params_label(data).map_or(name.to_string(), |p| format!("{name}, {p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_read_like_the_paper() {
        let mut data = DataPoint {
            name: "biased_mnist".into(),
            params: [("rho".to_string(), 0.99)].into(),
            ..Default::default()
        };
        assert_eq!(data_label(&data), "Biased MNIST, ρ = 0.99");
        data.params.clear();
        assert_eq!(params_label(&data), None);
        data.name = "multi_color_mnist".into();
        assert_eq!(data_label(&data), "Multi-Color MNIST");
    }

    #[test]
    fn numbers_read_like_the_paper() {
        assert_eq!(num(10.0), "10");
        assert_eq!(num(0.995), "0.995");
        assert_eq!(num(100.0 * 0.975), "97.5");
        assert_eq!(epochs_label(1.0 / 60.0), "1/60");
        assert_eq!(epochs_label(0.016666666666666666), "1/60");
        assert_eq!(epochs_label(0.3), "0.3");
        assert_eq!(epochs_label(40.0), "40");
    }
}
