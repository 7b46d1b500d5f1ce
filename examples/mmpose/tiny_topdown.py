# A tiny mmpose top-down config (ResNet-18 + HeatmapHead + MSRAHeatmap, 64x64 input) on the
# synthetic COCO data of make_coco.py, logged with unitb's EnhancedTensorBoardHook.
# Run by examples/mmpose/train.py (which sets data_root and work_dir).
default_scope = 'mmpose'
custom_imports = dict(imports=['mmpose_compat', 'torch_adapter'], allow_failed_imports=False)

data_root = 'data/tiny_coco/'
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [dict(type='LinearLR', begin=0, end=4, start_factor=0.1, by_epoch=False)]

codec = dict(type='MSRAHeatmap', input_size=(64, 64), heatmap_size=(16, 16), sigma=2)
model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(type='PoseDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(type='ResNet', depth=18),
    head=dict(type='HeatmapHead', in_channels=512, out_channels=17,
              loss=dict(type='KeypointMSELoss', use_target_weight=True), decoder=codec),
    test_cfg=dict(flip_test=False, output_heatmaps=True))  # pred_fields.heatmaps: the val/heatmap images

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CocoDataset', data_root=data_root, data_mode='topdown', ann_file='annotations/train.json',
                 data_prefix=dict(img='images/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(type='CocoDataset', data_root=data_root, data_mode='topdown', ann_file='annotations/val.json',
                 data_prefix=dict(img='images/'), test_mode=True, pipeline=val_pipeline))
val_evaluator = [dict(type='CocoMetric', ann_file=data_root + 'annotations/val.json'), dict(type='PCKAccuracy')]

default_hooks = dict(
    timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=2),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='EnhancedTensorBoardHook', grad_norm_interval=2, scalar_interval=1,
                     train_image_interval=4, val_image_interval=1, max_layers_to_log=8, log_graph=True,
                     embedding_layer='backbone')]
vis_backends = [dict(type='TensorboardVisBackend')]
visualizer = dict(type='PoseLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_level = 'WARNING'
randomness = dict(seed=0)
