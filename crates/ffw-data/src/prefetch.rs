//! A pass over a dataset in batches. Image files are decoded by a background thread (itself
//! decoding each batch in parallel on the rayon pool) that keeps at most [`PREFETCH`] batches
//! ready in a bounded queue, so decoding overlaps the training step and memory stays at a few
//! batches whatever the dataset's size.
use std::slice::Chunks;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use candle_core::Device;

use crate::dataset::{Batch, Dataset, Inputs};

/// Batches decoded ahead of the one being consumed.
pub const PREFETCH: usize = 3;

type Decoded = candle_core::Result<Vec<f32>>;

/// The background decoder: its queue, and the thread, joined when the pass is dropped.
struct Decoder {
    queue: Option<Receiver<Decoded>>,
    thread: Option<JoinHandle<()>>,
}

/// An iterator over `(indices, batch)`; see [`Dataset::batches`].
pub struct Batches<'a> {
    data: &'a Dataset,
    chunks: Chunks<'a, usize>,
    augment: Option<u64>,
    device: &'a Device,
    decoder: Option<Decoder>,
}

impl<'a> Batches<'a> {
    pub(crate) fn new(
        data: &'a Dataset,
        order: &'a [usize],
        batch_size: usize,
        augment: Option<u64>,
        device: &'a Device,
    ) -> Self {
        let batch_size = batch_size.max(1);
        let decoder = match &data.x {
            Inputs::Memory(_) => None,
            Inputs::Files(files) if order.iter().all(|&i| i < files.len()) => {
                let files = files.clone();
                let chunks: Vec<Vec<usize>> =
                    order.chunks(batch_size).map(<[usize]>::to_vec).collect();
                let (tx, rx) = sync_channel::<Decoded>(PREFETCH);
                let thread = std::thread::spawn(move || {
                    for chunk in chunks {
                        let x = files
                            .load(&chunk, augment)
                            .map_err(candle_core::Error::wrap);
                        // The consumer stopped (an error, or the pass was dropped early).
                        if tx.send(x).is_err() {
                            return;
                        }
                    }
                });
                Some(Decoder {
                    queue: Some(rx),
                    thread: Some(thread),
                })
            }
            // An out-of-range index: decode in line, where `gather_x` names it.
            Inputs::Files(_) => None,
        };
        Batches {
            data,
            chunks: order.chunks(batch_size),
            augment,
            device,
            decoder,
        }
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = candle_core::Result<(&'a [usize], Batch)>;

    fn next(&mut self) -> Option<Self::Item> {
        let chunk = self.chunks.next()?;
        let x = match &self.decoder {
            Some(Decoder {
                queue: Some(rx), ..
            }) => receive(rx),
            _ => self.data.gather_x(chunk, self.augment),
        };
        Some(x.and_then(|x| Ok((chunk, self.data.batch_from(chunk, x, self.device)?))))
    }
}

/// The next decoded batch. The consumer usually runs on a rayon pool thread (ffw runs its
/// commands there): while it waits it runs pool work, i.e. helps decode, instead of idling.
fn receive(rx: &Receiver<Decoded>) -> Decoded {
    let stopped = || candle_core::bail!("the image decoding thread stopped");
    loop {
        match rx.try_recv() {
            Ok(x) => return x,
            Err(TryRecvError::Disconnected) => return stopped(),
            Err(TryRecvError::Empty) => {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    match rx.recv_timeout(Duration::from_millis(1)) {
                        Ok(x) => return x,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return stopped(),
                    }
                }
            }
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // Closing the queue first makes a thread blocked on a full queue return.
        drop(self.queue.take());
        if let Some(t) = self.thread.take() {
            // Its last batch decodes on the rayon pool; on a pool thread (with one thread in
            // the pool, the only one) a plain join would wait for work only it can run.
            while !t.is_finished() {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::image_files::{ImageFiles, Preparation};

    fn files_dataset(dir: &std::path::Path, n: usize) -> Dataset {
        let paths: Vec<PathBuf> = (0..n)
            .map(|k| {
                let p = dir.join(format!("{k}.png"));
                image::RgbImage::from_pixel(5, 3, image::Rgb([(k * 9 % 256) as u8, 7, 200]))
                    .save(&p)
                    .unwrap();
                p
            })
            .collect();
        Dataset {
            x: Inputs::Files(Arc::new(ImageFiles {
                paths,
                prep: Preparation::imagenet(4),
                flip: false,
                cached: None,
            })),
            sample_shape: vec![3, 4, 4],
            y: (0..n as u32).map(|i| i % 2).collect(),
            n_classes: 2,
            biases: vec![(0..n as u32).map(|i| i / 2 % 2).collect()],
            n_bias_classes: vec![2],
            aligned: vec![vec![0, 1]],
        }
    }

    #[test]
    fn prefetched_batches_equal_batches_decoded_in_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = files_dataset(dir.path(), 23);
        let order = crate::dataset::epoch_order(d.len(), 3, 0);
        let mut seen = 0;
        for item in d.batches(&order, 5, None, &Device::Cpu) {
            let (chunk, b) = item.unwrap();
            let direct = d.batch(chunk, &Device::Cpu).unwrap();
            let v = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(v(&b.x), v(&direct.x));
            assert_eq!(
                b.y.to_vec1::<u32>().unwrap(),
                direct.y.to_vec1::<u32>().unwrap()
            );
            seen += chunk.len();
        }
        assert_eq!(seen, 23);
        // A pass abandoned early stops its thread (the drop joins it).
        let mut pass = d.batches(&order, 2, None, &Device::Cpu);
        assert!(pass.next().unwrap().is_ok());
        drop(pass);
    }

    #[test]
    fn a_corrupt_file_fails_its_batch_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = files_dataset(dir.path(), 6);
        let Inputs::Files(f) = &d.x else {
            unreachable!()
        };
        std::fs::write(&f.paths[4], b"garbage").unwrap();
        let order: Vec<usize> = (0..6).collect();
        let results: Vec<_> = d.batches(&order, 2, None, &Device::Cpu).collect();
        assert!(results[0].is_ok() && results[1].is_ok());
        let msg = results[2].as_ref().unwrap_err().to_string();
        assert!(msg.contains("4.png"), "{msg}");
    }

    #[test]
    fn in_memory_passes_are_the_plain_batches() {
        let d = Dataset {
            x: (0..40).map(|v| v as f32).collect::<Vec<_>>().into(),
            sample_shape: vec![4],
            y: vec![0; 10],
            n_classes: 1,
            biases: vec![],
            n_bias_classes: vec![],
            aligned: vec![],
        };
        let order = [3usize, 1, 4, 9, 0];
        let got: Vec<Vec<f32>> = d
            .batches(&order, 2, Some(1), &Device::Cpu)
            .map(|r| r.unwrap().1.x.flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], vec![0., 1., 2., 3.]);
        assert_eq!(got[0][..4], [12., 13., 14., 15.]);
    }
}
