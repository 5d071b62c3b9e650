// RUN: pock-opt %s -p 'autodiff{loss=cross_entropy optimizer=sgd lr=0.05}' | filecheck %s
// RUN: pock-opt %s -p 'autodiff{optimizer=sgd lr=0.1 momentum=0.9 nesterov=true}' | filecheck %s --check-prefix=MOMENTUM
// RUN: pock-opt %s -p 'autodiff{loss=mse optimizer=adamw lr=1e-3 weight_decay=0.01}' | filecheck %s --check-prefix=ADAMW
// RUN: not pock-opt %s -p 'autodiff{loss=hinge}' 2>&1 | filecheck %s --check-prefix=BADLOSS
// RUN: not pock-opt %s -p 'autodiff{loss=next_token}' 2>&1 | filecheck %s --check-prefix=BADSHAPE

// A two-layer MLP whose fc2.weight is frozen: it gets a gradient path (fc1 needs it) but no
// update, and the data input %x gets no gradient at all.
builtin.module {
  train.param @fc1.weight : tensor<5x3xf32> {role = "weight", trainable = true}
  train.param @fc1.bias : tensor<5xf32> {role = "bias", trainable = true}
  train.param @fc2.weight : tensor<2x5xf32> {role = "weight", trainable = false}
  func.func @forward(%x: tensor<4x3xf32>) -> tensor<4x2xf32> {
    %w1 = train.get @fc1.weight : tensor<5x3xf32>
    %b1 = train.get @fc1.bias : tensor<5xf32>
    %h0 = train.linear %x, %w1 : (tensor<4x3xf32>, tensor<5x3xf32>) -> tensor<4x5xf32>
    %h1 = train.add %h0, %b1 : (tensor<4x5xf32>, tensor<5xf32>) -> tensor<4x5xf32>
    %h = train.tanh %h1 : tensor<4x5xf32>
    %w2 = train.get @fc2.weight : tensor<2x5xf32>
    %y = train.linear %h, %w2 : (tensor<4x5xf32>, tensor<2x5xf32>) -> tensor<4x2xf32>
    func.return %y : tensor<4x2xf32>
  }
}

// CHECK:      func.func @forward(%x: tensor<4x3xf32>) -> tensor<4x2xf32> {
// CHECK:      func.func @train_step(%x: tensor<4x3xf32>, %labels: tensor<4xi64>) -> tensor<f32> {
// CHECK:        %y = train.linear %h, %w2
// CHECK-NEXT:   %loss = train.cross_entropy %y, %labels : (tensor<4x2xf32>, tensor<4xi64>) -> tensor<f32>
// CHECK-NEXT:   %[[ONE:.*]] = train.constant dense<1.000000e+00> : tensor<f32>
// CHECK-NEXT:   %d_y = train.cross_entropy_backward %y, %labels, %[[ONE]]
// CHECK-NEXT:   %d_h = train.matmul %d_y, %w2 : (tensor<4x2xf32>, tensor<2x5xf32>) -> tensor<4x5xf32>
// CHECK:        %d_h1 = train.mul %d_h, %{{.*}} : tensor<4x5xf32>
// CHECK-NEXT:   %d_b1 = train.sum %d_h1 {axes = [0]} : (tensor<4x5xf32>) -> tensor<5xf32>
// CHECK-NEXT:   %d_w1 = train.linear_backward_weight %x, %d_h1 : (tensor<4x3xf32>, tensor<4x5xf32>) -> tensor<5x3xf32>
// CHECK-NEXT:   %fc1.weight = train.get @fc1.weight : tensor<5x3xf32>
// CHECK-NEXT:   %fc1.weight.new = train.sgd %fc1.weight, %d_w1 {lr = 0.05} : tensor<5x3xf32>
// CHECK-NEXT:   train.set @fc1.weight, %fc1.weight.new : tensor<5x3xf32>
// CHECK-NEXT:   %fc1.bias = train.get @fc1.bias : tensor<5xf32>
// CHECK-NEXT:   %fc1.bias.new = train.sgd %fc1.bias, %d_b1 {lr = 0.05} : tensor<5xf32>
// CHECK-NEXT:   train.set @fc1.bias, %fc1.bias.new : tensor<5xf32>
// CHECK-NEXT:   func.return %loss : tensor<f32>
// CHECK-NOT:  linear_backward_weight %h
// CHECK-NOT:  train.set @fc2

// MOMENTUM:      train.param @optimizer.step : tensor<f32> {role = "optimizer_state", trainable = false}
// MOMENTUM-NEXT: train.param @fc1.weight.momentum : tensor<5x3xf32> {role = "optimizer_state", trainable = false}
// MOMENTUM-NEXT: train.param @fc1.bias.momentum : tensor<5xf32> {role = "optimizer_state", trainable = false}
// MOMENTUM-NOT:  @fc2.weight.momentum
// MOMENTUM:      %optimizer.step = train.get @optimizer.step : tensor<f32>
// MOMENTUM-NEXT: %step = train.add %optimizer.step, %{{.*}} : tensor<f32>
// MOMENTUM-NEXT: train.set @optimizer.step, %step : tensor<f32>
// MOMENTUM:      %fc1.weight.new, %fc1.weight.momentum.new = train.sgd %fc1.weight, %d_w1, %fc1.weight.momentum, %step {lr = 0.1, momentum = 0.9, nesterov = true}
// MOMENTUM-NEXT: train.set @fc1.weight, %fc1.weight.new : tensor<5x3xf32>
// MOMENTUM-NEXT: train.set @fc1.weight.momentum, %fc1.weight.momentum.new : tensor<5x3xf32>

// ADAMW:      func.func @train_step(%x: tensor<4x3xf32>, %labels: tensor<4x2xf32>) -> tensor<f32> {
// ADAMW:        %loss = train.mse %y, %labels : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<f32>
// ADAMW:        %fc1.bias.new, %fc1.bias.exp_avg.new, %fc1.bias.exp_avg_sq.new = train.adam %fc1.bias, %d_b1, %fc1.bias.exp_avg, %fc1.bias.exp_avg_sq, %step {weight_decay = 0.01, decoupled = true}
// ADAMW-NEXT:   train.set @fc1.bias, %fc1.bias.new
// ADAMW-NEXT:   train.set @fc1.bias.exp_avg, %fc1.bias.exp_avg.new
// ADAMW-NEXT:   train.set @fc1.bias.exp_avg_sq, %fc1.bias.exp_avg_sq.new

// BADLOSS: loss must be one of cross_entropy, mse, next_token, got 'hinge'
// BADSHAPE: loss=next_token needs logits [B, T, V], got 4x2
