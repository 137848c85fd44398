"""eipnn_training: everything that makes an eipnn model (EIP labels, data, models,
strategies, export). It imports ``eipnn_calc``; the runtime never imports it."""
