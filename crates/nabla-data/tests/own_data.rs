//! The data sets a user brings: image folders (classes from folder names,
//! channels first, resizing), tensors in memory, the batch helpers, and the
//! description a model file keeps (old files still read).

use nabla_data::*;
use nabla_tensor::Tensor;
use std::path::Path;

fn write_rgb(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

#[test]
fn an_image_folder_reads_classes_channels_first_and_resizes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for class in ["cat", "bird", ".hidden"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    write_rgb(&root.join("cat/b.png"), 4, 2, [10, 20, 30]);
    write_rgb(&root.join("cat/a.PNG"), 4, 2, [40, 50, 60]);
    write_rgb(&root.join("bird/z.png"), 4, 2, [70, 80, 90]);
    std::fs::write(root.join("cat/readme.txt"), "ignored").unwrap();
    let rgb = load_image_folder(
        root,
        ImageFolderOptions {
            color: Color::Rgb,
            size: None,
        },
    )
    .unwrap();
    assert_eq!(
        rgb.classes(),
        ["bird", "cat"],
        "sorted; hidden folders ignored"
    );
    assert_eq!(rgb.sample_shape(), &[3, 2, 4]);
    assert_eq!(Dataset::len(&rgb), 3);
    // bird/z, then cat/a before cat/b: each image's red plane, then green, then blue.
    let x = gather_inputs(&rgb, &[1]).unwrap();
    assert_eq!(x.dims(), &[1, 3, 2, 4]);
    let want: Vec<f32> = [40.0f32, 50.0, 60.0]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v / 255.0, 8))
        .collect();
    assert_eq!(x.data(), &want[..]);
    assert_eq!(class_labels(&rgb, &[0, 1, 2]).unwrap(), [0, 1, 1]);
    let gray = load_image_folder(
        root,
        ImageFolderOptions {
            color: Color::Gray,
            size: Some((3, 3)),
        },
    )
    .unwrap();
    assert_eq!(gray.sample_shape(), &[1, 3, 3]);
    assert_eq!(gray.grayscale_dims(), Some((3, 3)));
    // A one-pixel image of a known colour reads back at that size.
    let one = load_image(&root.join("bird/z.png"), Color::Gray, (2, 4), false).unwrap();
    assert_eq!(one.len(), 8);
    assert!(
        load_image(&root.join("bird/z.png"), Color::Gray, (3, 3), false)
            .unwrap_err()
            .to_string()
            .contains("the image is 2x4 (height x width); the model takes 3x3")
    );
    assert!(load_image(&root.join("bird/z.png"), Color::Gray, (0, 99_999), true).is_err());
    // An empty class folder is named.
    std::fs::create_dir_all(root.join("dog")).unwrap();
    let err = load_image_folder(root, ImageFolderOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("the class folder 'dog' holds no PNG or JPEG images"),
        "{err}"
    );
}

#[test]
fn tensor_data_sets_check_their_shapes_and_split_by_seed() {
    let x = Tensor::from_vec((0..12).map(|v| v as f32).collect(), &[6, 2]).unwrap();
    let d =
        TensorDataset::classification(x.clone(), &[0, 1, 0, 1, 0, 1], vec!["a".into(), "b".into()])
            .unwrap();
    assert!(TensorDataset::classification(
        x.clone(),
        &[0, 2, 0, 1, 0, 1],
        vec!["a".into(), "b".into()]
    )
    .is_err());
    assert!(TensorDataset::regression(x.clone(), Tensor::zeros(&[5])).is_err());
    let (kept, held) = d.split(0.5, 1).unwrap();
    assert_eq!((Dataset::len(&kept), Dataset::len(&held)), (3, 3));
    let (kept2, _) = d.split(0.5, 1).unwrap();
    assert_eq!(kept, kept2, "the same seed, the same split");
    assert!(gather_inputs(&d, &[6]).is_err(), "out of range is an error");
    let t = gather_targets(&d, &[1, 2]).unwrap();
    assert_eq!((t.dims(), t.data()), (&[2, 1][..], &[1.0, 0.0][..]));
    let r = TensorDataset::regression(x, Tensor::zeros(&[6, 2])).unwrap();
    assert_eq!(r.task(), &Task::Regress { outputs: 2 });
    assert!(class_labels(&r, &[0]).is_err());
}

#[test]
fn a_model_files_data_description_round_trips_and_old_files_still_read() {
    let table = Table::parse(Path::new("t.csv"), b"x,y\n1,0.5\n3,1.5\n").unwrap();
    let data = table.to_data("y", None).unwrap();
    let scaler = Standardizer::fit(data.data.inputs().data(), 1).unwrap();
    let spec = DataSpec {
        dataset: "t.csv".into(),
        task: TaskKind::Regress,
        classes: vec![],
        preprocessing: None,
        images: None,
        table: Some(TableInput {
            features: data.features.clone(),
            target: data.target.clone(),
            inputs: scaler,
            targets: None,
        }),
    };
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<DataSpec>(&json).unwrap(), spec);
    // A file written before tables existed: a digit classifier.
    let old = r#"{"dataset":"mnist","classes":["0","1"],"preprocessing":{"height":28,"width":28,"scale":0.00392156862745098,"ink_is_bright":true}}"#;
    let spec: DataSpec = serde_json::from_str(old).unwrap();
    assert_eq!(spec.task, TaskKind::Classify);
    assert_eq!(spec.preprocessing, Some(Preprocessing::default()));
}
