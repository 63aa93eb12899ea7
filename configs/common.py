"""Defaults shared by every GAN config; each experiment file overrides what it changes."""

import ml_collections


def gan_config() -> ml_collections.ConfigDict:
  """A complete GAN config (DCGAN on the embedded MNIST digits)."""
  config = ml_collections.ConfigDict()
  config.experiment = 'gan'
  config.seed = 0
  # Mesh axes and sizes; -1 takes all remaining devices. The batch splits over 'data'/'fsdp'.
  config.mesh = (('data', -1),)

  config.data = ml_collections.ConfigDict()
  config.data.source = 'embedded:mnist'  # embedded:mnist|digits, tfds:NAME, folder:/path
  config.data.tfds_data_dir = ''  # TFDS data_dir ('' = TFDS default).
  config.data.image_size = 32  # For folder sources: every image is resized to this.
  config.data.channels = 3  # For folder sources: 1 (greyscale) or 3 (RGB).
  # Train on this many images of each class (0 = all): the first of each class in a shuffled
  # order seeded by per_class_seed (bench/low_data.py's subsets). Judged against the full splits.
  config.data.per_class = 0
  config.data.per_class_seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.generator = 'dcgan'
  config.model.discriminator = 'dcgan'
  config.model.latent_dim = 100
  config.model.g_width = 32  # 7x7x128 -> 14x14x64 -> 28x28x32; ~9 GFLOP per step at batch 64.
  config.model.d_width = 32
  config.model.conditional = False  # Class-conditional G and D (labels from the data).
  config.model.conditioning = 'projection'  # How D uses labels: projection or acgan.
  # What G and D are conditioned on beyond (or instead of) the label (gan_jax/conditions.py):
  # e.g. ('label', 'thickness', 'slant'); () = ('label',) if conditional, else nothing.
  config.model.condition = ()
  config.model.features = ''  # For 'features': a classifier workdir or an (N, F) .npy.
  # How D judges the condition vector: 'projection' or 'regression' (an auxiliary regressor
  # fitted on real images, loss.regression_weight).
  config.model.vector_conditioning = 'projection'
  config.model.vector_modulation = False  # The vector also modulates G's batch norms (dcgan).
  config.model.spectral_norm = False  # Spectral norm on every D layer.
  # PacGAN (Lin et al. 2018): D judges packs of this many examples, stacked along channels (its
  # penalties too); 1 = off. Unconditional models only; the batch must split into packs.
  config.model.pack = 1
  # What G and D compute in: 'float32', or 'bfloat16' (mixed precision: parameters, optimizer
  # state, EMA, batch-norm statistics, losses and penalties stay float32).
  config.model.dtype = 'float32'

  config.loss = ml_collections.ConfigDict()
  config.loss.name = 'non_saturating'  # non_saturating, hinge, wasserstein, least_squares, rpgan
  config.loss.r1_gamma = 0.0  # R1 penalty weight gamma (the penalty is gamma/2 * R1).
  config.loss.r2_gamma = 0.0  # R2: the same on generated images (R3GAN uses R1 + R2).
  config.loss.gp_weight = 0.0  # WGAN-GP lambda.
  # Lazy regularisation (StyleGAN2): R1/R2/GP every k steps, weighted k times; 1 = every step.
  config.loss.penalty_every = 1
  config.loss.lecam_weight = 0.0  # LeCam regularisation weight.
  config.loss.lecam_decay = 0.99
  config.loss.acgan_weight = 1.0  # Class-loss weight when model.conditioning = 'acgan'.
  config.loss.regression_weight = 1.0  # With model.vector_conditioning = 'regression'.

  config.augment = ml_collections.ConfigDict()
  config.augment.policy = ''  # DiffAugment, e.g. 'color,translation,cutout' ('' = off).
  # ADA (Karras et al. 2020, gan_jax/augmentations/ada.py): each of `ada_ops` applied to each
  # image D sees with probability p. Adaptive: p steps every `ada_interval` steps towards
  # E[sign(D(real))] = `ada_target` (0 = not adaptive), by up to 1 per `ada_kimg` thousand
  # images. Fixed: p = `ada_p`, reached linearly over `ada_ramp_steps` (0 = from the start).
  config.augment.ada_target = 0.0
  config.augment.ada_kimg = 20.0
  config.augment.ada_interval = 4
  config.augment.ada_ops = 'xint,geom,color'
  config.augment.ada_p = 0.0
  config.augment.ada_ramp_steps = 0

  # --mode=project (gan_jax/projection.py): the noise that reproduces a real image. Its
  # classifier gives the perceptual loss and reads labels ('' = eval.classifier_workdir; none
  # at all: pixels only). Each image scores `candidates` random z, descends from the best
  # `restarts` for `steps` Adam steps and keeps the best.
  config.project = ml_collections.ConfigDict()
  config.project.classifier_workdir = ''
  config.project.steps = 50
  config.project.restarts = 1
  config.project.candidates = 32
  config.project.learning_rate = 0.05
  config.project.pixel_weight = 1.0
  config.project.perceptual_weight = 1.0
  config.project.prior_weight = 0.01
  config.project.batch_size = 50
  config.project.seed = 0

  config.optim = ml_collections.ConfigDict()
  config.optim.g = ml_collections.ConfigDict(dict(learning_rate=2e-4, b1=0.5, b2=0.999))
  config.optim.d = ml_collections.ConfigDict(dict(learning_rate=2e-4, b1=0.5, b2=0.999))

  # Cosine ramps over `steps` (R3GAN's recipe; 0 = constant): the learning rates fall to
  # `learning_rate_final` x, r1/r2 gamma to `gamma_final` x, and Adam's beta2 rises from
  # `b2_start` to optim.*.b2 (0 = no ramp).
  config.schedule = ml_collections.ConfigDict(
    dict(steps=0, learning_rate_final=1.0, gamma_final=1.0, b2_start=0.0)
  )

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 2000  # About 5 minutes on 2 CPU cores.
  config.train.batch_size = 64  # Global: the same whatever the device count.
  # > 0: stop and save once the process has run this many seconds (imports and compilation
  # included), whatever num_steps says. bench/time_to_quality.py trains at equal wall time.
  config.train.time_budget_s = 0.0
  # > 0: also save the train state every this many seconds of training time into
  # workdir/snapshots/ (all kept), for judging quality against time (bench/time_to_quality.py).
  config.train.snapshot_every_secs = 0.0
  config.train.log_every = 50
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  # Checkpoints written on a thread while training goes on (orbax's async checkpointing); a
  # failed write is reported at the next save or at exit.
  config.train.async_checkpointing = True
  config.train.checkpoints_to_keep = 3
  config.train.progress_every_secs = 5.0
  config.train.skip_nonfinite = False  # True: skip NaN/Inf steps instead of stopping the run.
  config.train.ema_decay = 0.999
  config.train.ema_warmup = True

  config.eval = ml_collections.ConfigDict()
  config.eval.num_grid_samples = 64
  config.eval.grid_seed = 12345
  # Classifier-feature metrics (FID, KID, ...) at each eval when a classifier run is named.
  config.eval.classifier_workdir = ''  # e.g. runs/mnist_classifier ('' = no metrics).
  config.eval.num_samples = 1000  # Generated images per evaluation.
  config.eval.sample_seed = 0
  # Truncation trick for the judged samples: |z| > this is redrawn (0 = off, plain N(0, 1)).
  config.eval.truncation = 0.0
  config.eval.reference_split = 'train'  # Real features the generator is compared with.
  config.eval.floor_split = 'test'  # Held-out real images: the real-data floor.
  # A second classifier (another seed than any conditioning encoder) for the `instance`
  # evaluator's retrieval ranks ('' = off).
  config.eval.rank_classifier_workdir = ''
  # Inception FID/KID/IS (--mode=eval): pytorch-fid's pt_inception-2015-12-05-6726825d.pth.
  config.eval.inception_weights = ''  # Path to the weights file ('' = no Inception metrics).
  # Generated images judged by Inception; 0 = 50,000 on a GPU/TPU (papers' fid50k), 10,000 on
  # a CPU (an Inception pass over 10,000 images takes ~20 minutes on 2 cores).
  config.eval.inception_num_samples = 0
  config.eval.inception_reference_samples = 0  # Real images of the reference split (0 = all).
  # --mode=cas (gan_jax/cas.py): the classifier recipe trained on generated digits, how many
  # (0 = as many as the recipe's real training split) and their noise seed.
  config.eval.cas_classifier_config = 'configs/mnist_classifier.py'
  config.eval.cas_num_samples = 0
  config.eval.cas_seed = 0
  config.eval.inception_cache_dir = ''  # Reference features ('' = ~/.cache/gan_jax/inception).

  # Evaluators (gan_jax/evaluators.py): NAME -> type, every (steps; 0 = train.eval_every,
  # < 0 = --mode=eval only) and num_samples (0 = the eval section's count). Each runs only
  # when its judge is configured: classifier_workdir, inception_weights.
  config.evals = ml_collections.ConfigDict(
    dict(
      classifier_metrics=dict(type='classifier_metrics', every=0, num_samples=0),
      # Inception-v3 on 10,000 images takes ~20 minutes of 2 CPU cores: --mode=eval only.
      inception=dict(type='inception', every=-1, num_samples=0),
      # Retrieval rank of held-out digits from samples conditioned on them (conditional
      # models; needs eval.rank_classifier_workdir): --mode=eval only.
      instance=dict(type='instance', every=-1, num_samples=0),
    )
  )
  return config


def r3gan_recipe(
  config: ml_collections.ConfigDict,
  gamma: float,
  schedule_steps: int,
  learning_rate: float = 2e-4,
) -> ml_collections.ConfigDict:
  """R3GAN's training recipe (Huang et al. 2024) on any model: the relativistic pairing loss
  with R1 + R2 (both gamma), Adam with beta1 = 0, and cosine ramps over `schedule_steps` as in
  the paper's code: lr -> lr / 4 (the paper's 2e-4 -> 5e-5), gamma -> gamma / 10, beta2 0.9 ->
  0.99."""
  config.loss.name = 'rpgan'
  config.loss.r1_gamma = config.loss.r2_gamma = gamma
  for optim in (config.optim.g, config.optim.d):
    optim.learning_rate, optim.b1, optim.b2 = learning_rate, 0.0, 0.99
  config.schedule.steps = schedule_steps
  config.schedule.learning_rate_final = 0.25
  config.schedule.gamma_final = 0.1
  config.schedule.b2_start = 0.9
  return config


def r3gan_model(
  config: ml_collections.ConfigDict,
  width: int,
  blocks_per_stage: int,
  group_size: int,
  expansion: int = 2,
  stage_widths: tuple[int, ...] = (),
) -> ml_collections.ConfigDict:
  """R3GAN's ResNet for G and D (gan_jax/models/r3gan.py): `stage_widths` per resolution,
  smallest first, or `width` at every stage when it is empty; `d_stage_widths` (empty = the
  same) gives D its own, and `d_head_width` > 0 a hidden layer before D's output."""
  config.model.generator = config.model.discriminator = 'r3gan'
  config.model.g_width = config.model.d_width = width
  config.model.latent_dim = 64  # The paper's noise dimension.
  config.model.r3gan = ml_collections.ConfigDict(
    dict(
      blocks_per_stage=blocks_per_stage,
      expansion=expansion,
      group_size=group_size,
      stage_widths=tuple(stage_widths),
      d_stage_widths=(),
      d_head_width=0,  # > 0: a hidden layer in D's head (not R3GAN's; docs/stacked_mnist.md).
    )
  )
  return config


def classifier_config(
  source: str, num_epochs: int, train_size: int, batch_size: int = 128
) -> ml_collections.ConfigDict:
  """The article's CNN recipe: Adam (1e-3, Keras' default), cross-entropy, batch 128."""
  config = ml_collections.ConfigDict()
  config.experiment = 'classifier'
  config.seed = 0
  config.mesh = (('data', -1),)
  config.data = ml_collections.ConfigDict()
  config.data.source = source
  config.data.eval_split = 'test'
  config.data.tfds_data_dir = ''
  config.data.image_size = 32
  config.data.channels = 3
  # dtype: what the model computes in ('float32' or 'bfloat16'); parameters stay float32.
  config.model = ml_collections.ConfigDict(dict(name='cnn', dtype='float32'))
  config.optim = ml_collections.ConfigDict(dict(learning_rate=1e-3))
  # Random shifts (pixels) and rotations (degrees) of each training image; the article's recipe
  # has none (0).
  config.augment = ml_collections.ConfigDict(dict(max_shift=0.0, max_degrees=0.0))
  steps_per_epoch = train_size // batch_size
  config.train = ml_collections.ConfigDict()
  config.train.num_steps = num_epochs * steps_per_epoch
  config.train.batch_size = batch_size
  config.train.log_every = max(1, steps_per_epoch // 4)
  config.train.eval_every = steps_per_epoch  # Test accuracy once per epoch.
  config.train.checkpoint_every = steps_per_epoch
  config.train.checkpoints_to_keep = 2
  config.train.async_checkpointing = True
  config.train.progress_every_secs = 5.0
  config.train.snapshot_every_secs = 0.0
  config.train.skip_nonfinite = False
  config.evals = ml_collections.ConfigDict(
    dict(test_accuracy=dict(type='test_accuracy', every=0, num_samples=0))
  )
  return config


def smoke_classifier(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  config.train.num_steps = 6
  config.train.batch_size = 32
  config.train.log_every = 2
  config.train.eval_every = 3
  config.train.checkpoint_every = 3
  config.train.progress_every_secs = 0.0
  return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks a config to seconds on a CPU: tiny widths, a few steps, every artefact written."""
  config.model.g_width = 8
  config.model.d_width = 8
  config.train.num_steps = 6
  config.train.batch_size = 16
  config.train.log_every = 2
  config.train.eval_every = 3
  config.train.checkpoint_every = 3
  config.train.progress_every_secs = 0.0
  config.eval.num_grid_samples = 16
  return config


def select_variant(
  config: ml_collections.ConfigDict, name: str, variant: str | None, shrink=smoke, **smoke_overrides
) -> ml_collections.ConfigDict:
  """`config` as is (no variant), or shrunk by `shrink` for 'smoke', then `smoke_overrides`
  applied (dotted keys with '__' for '.', e.g. model__g_width=4); another name is an error."""
  if variant == 'smoke':
    shrink(config)
    for key, value in smoke_overrides.items():
      *sections, field = key.split('__')
      node = config
      for section in sections:
        node = node[section]
      node[field] = value
  elif variant:
    raise ValueError(f"unknown variant '{variant}' of {name}: use smoke or nothing")
  return config
