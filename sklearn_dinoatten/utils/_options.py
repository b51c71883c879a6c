"""Every option's allowed values, and the defaults the command line shares with the
estimators: one definition, read by the estimators' parameter constraints and by
``dinoatten``'s argparse setup (``tests/test_options.py`` checks that both agree).

Plain Python only: ``dinoatten --help`` reads it without importing torch, numpy or
scikit-learn.
"""

# Allowed values ----------------------------------------------------------------------

# The named slicing axes, by array axis (files are reoriented to RAS: x, y, z).
PLANES = ("sagittal", "coronal", "axial")
ALL_PLANES = "all"  # the three orientations at once: tri-planar bags
AXIS_CHOICES = (*reversed(PLANES), ALL_PLANES)  # the command line's, axial (default) first
SLICE_SELECTIONS = ("uniform", "center")
CROPS = ("none", "foreground")
NORMALIZATIONS = ("minmax", "zscore")
FEATURES = ("cls", "mean", "cls+mean", "patch")
DTYPES = ("float32", "bfloat16", "float16", "int8")
ENGINES = ("torch", "onnxruntime", "openvino")

TASKS = ("classification", "regression")  # what a model predicts: a class, or a number
REGRESSION_LOSSES = ("mse", "l1", "huber")  # a regressor's training loss
BIAS_CORRECTIONS = ("linear",)  # of a regression's errors, fitted on training scans
RECALIBRATIONS = ("platt", "isotonic")  # fitted on training scans inside an evaluation
CLASS_WEIGHTS = ("balanced",)  # besides None and a dict of weights
NO_CLASS_WEIGHT = "none"  # the command line's spelling of class_weight=None
LR_SCHEDULES = ("constant", "cosine", "step")
POOLINGS = ("attention", "gated", "mean", "max")  # of slice embeddings
RESNET_DEPTHS = (10, 18, 34, 50)
RESNET_STEMS = ("standard", "strided", "small")

DEMO_DATASETS = ("synthetic", "adrenal", "brain-age")  # brain-age: a regression's

# Defaults shared by the command line and the estimators ----------------------------

BACKBONE = "vit_small_patch14_dinov2"
IMAGE_SIZE = 224
AXIS = "axial"
CROP = "none"
MIN_FOREGROUND = 0.0
BATCH_SIZE = 32  # slices per forward pass
DTYPE = "float32"
ENGINE = "torch"
N_READERS = "auto"
DEVICE = "auto"

MAX_EPOCHS = 50
N_FOLDS = 5  # cross-validation's folds
THRESHOLD = 0.5  # the operating point of two classes: the positive class's probability
RANDOM_STATE = 0  # the command line's seed; the estimators' own default is None
RESNET_DEPTH = 18
RESNET_WIDTH = 1.0
VOLUME_SIDE = 64  # the 3D ResNet's volumes: cubes of this side

BIDS_SUFFIX = "T1w"  # a BIDS dataset's kind of scan (the end of its file names)

DEMO_DATASET = "synthetic"
DEMO_N_SCANS = 100
