//! A split's minibatches on one device. On a GPU an in-memory split is copied there once and
//! every batch is an `index_select` on the device: a copy from the host per minibatch would
//! cost a transfer and a stall per step. On the CPU, and for image files (read on demand),
//! batches come from the host as [`Dataset::batches`] makes them (a resident copy would only
//! double the split's memory); both give the same values.
use candle_core::{Device, Tensor};

use crate::dataset::{Batch, Dataset, Inputs};

pub struct DeviceSplit<'a> {
    data: &'a Dataset,
    device: Device,
    /// The whole split on the device, where that is not the CPU and the split is in memory.
    resident: Option<Batch>,
}

/// `(indices, batch)` items of one pass.
pub type Pass<'b> = Box<dyn Iterator<Item = candle_core::Result<(&'b [usize], Batch)>> + 'b>;

impl<'a> DeviceSplit<'a> {
    pub fn new(data: &'a Dataset, device: &Device) -> candle_core::Result<Self> {
        let resident = match &data.x {
            Inputs::Memory(_) if !device.is_cpu() => {
                let all: Vec<usize> = (0..data.len()).collect();
                Some(data.batch(&all, device)?)
            }
            _ => None,
        };
        Ok(Self {
            data,
            device: device.clone(),
            resident,
        })
    }

    pub fn data(&self) -> &'a Dataset {
        self.data
    }

    /// The samples at `indices`, in that order; an error on an out-of-range index.
    pub fn batch(&self, indices: &[usize]) -> candle_core::Result<Batch> {
        let Some(all) = &self.resident else {
            return self.data.batch(indices, &self.device);
        };
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.data.len()) {
            candle_core::bail!(
                "batch index {bad} out of range for a dataset of {}",
                self.data.len()
            );
        }
        let idx = Tensor::from_iter(indices.iter().map(|&i| i as u32), &self.device)?;
        Ok(Batch {
            x: all.x.index_select(&idx, 0)?,
            y: all.y.index_select(&idx, 0)?,
            biases: all
                .biases
                .iter()
                .map(|b| b.index_select(&idx, 0))
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// The batches of `order`, `batch_size` at a time; `augment` as in [`Dataset::batches`]
    /// (image files only: a resident split is in memory and has no random flips).
    pub fn pass<'b>(
        &'b self,
        order: &'b [usize],
        batch_size: usize,
        augment: Option<u64>,
    ) -> Pass<'b> {
        if self.resident.is_some() {
            Box::new(
                order
                    .chunks(batch_size.max(1))
                    .map(move |chunk| Ok((chunk, self.batch(chunk)?))),
            )
        } else {
            Box::new(self.data.batches(order, batch_size, augment, &self.device))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The device path (resident split, `index_select`) picks what the host path does; it is
    /// exercised here on the CPU by forcing a resident copy.
    #[test]
    fn resident_batches_equal_host_batches() {
        let n = 7;
        let d = Dataset {
            x: (0..n * 4)
                .map(|v| v as f32 * 0.5)
                .collect::<Vec<f32>>()
                .into(),
            sample_shape: vec![1, 2, 2],
            y: (0..n as u32).map(|i| i % 3).collect(),
            n_classes: 3,
            biases: vec![(0..n as u32).map(|i| i % 2).collect()],
            n_bias_classes: vec![2],
            aligned: vec![vec![0, 1, 0]],
        };
        let all: Vec<usize> = (0..n).collect();
        let forced = DeviceSplit {
            data: &d,
            device: Device::Cpu,
            resident: Some(d.batch(&all, &Device::Cpu).unwrap()),
        };
        let host = DeviceSplit::new(&d, &Device::Cpu).unwrap();
        assert!(
            host.resident.is_none(),
            "no second copy of a split on the CPU"
        );
        let idx = [6, 0, 3, 3];
        let (a, b) = (forced.batch(&idx).unwrap(), host.batch(&idx).unwrap());
        assert_eq!(a.x.dims(), b.x.dims());
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&a.x), flat(&b.x));
        assert_eq!(a.y.to_vec1::<u32>().unwrap(), b.y.to_vec1::<u32>().unwrap());
        assert_eq!(
            a.biases[0].to_vec1::<u32>().unwrap(),
            b.biases[0].to_vec1::<u32>().unwrap()
        );
        assert!(forced.batch(&[7]).is_err());
        assert!(host.batch(&[7]).is_err());
        // A pass over both: the same chunks and values.
        let order = [5, 1, 2, 6, 0];
        let (forced, host): (Vec<_>, Vec<_>) = (
            forced.pass(&order, 2, None).map(Result::unwrap).collect(),
            host.pass(&order, 2, None).map(Result::unwrap).collect(),
        );
        assert_eq!(forced.len(), 3);
        for ((ca, a), (cb, b)) in forced.iter().zip(&host) {
            assert_eq!(ca, cb);
            assert_eq!(flat(&a.x), flat(&b.x));
        }
    }
}
