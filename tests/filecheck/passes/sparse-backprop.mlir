// RUN: pock-opt %s -p 'sparse-backprop{scheme="default frozen; fc1.weight: ratio 1/2; fc2.bias: full"}' | filecheck %s
// RUN: pock-opt %s -p 'sparse-backprop{scheme="default frozen; last 1 layers: bias"}' | filecheck %s --check-prefix=BIAS
// RUN: (pock-opt %s -p 'sparse-backprop{scheme="default frozen; fc3.*: full"}' 2>&1 || true) | filecheck %s --check-prefix=NOMATCH
// RUN: (pock-opt %s -p 'sparse-backprop{scheme="fc1.weight: ratio 0.0"}' 2>&1 || true) | filecheck %s --check-prefix=RATIO

// A two-layer MLP step as autodiff emits it (SGD with momentum). Frozen parameters lose their
// update and state; fc1.weight keeps an update of its first 3 of 6 input columns.
builtin.module {
  train.param @fc1.weight : tensor<8x6xf32> {role = "weight", trainable = true}
  train.param @fc1.bias : tensor<8xf32> {role = "bias", trainable = true}
  train.param @fc2.weight : tensor<3x8xf32> {role = "weight", trainable = true}
  train.param @fc2.bias : tensor<3xf32> {role = "bias", trainable = true}
  train.param @fc1.weight.momentum : tensor<8x6xf32> {role = "optimizer_state", trainable = false}
  train.param @fc1.bias.momentum : tensor<8xf32> {role = "optimizer_state", trainable = false}
  train.param @fc2.weight.momentum : tensor<3x8xf32> {role = "optimizer_state", trainable = false}
  train.param @fc2.bias.momentum : tensor<3xf32> {role = "optimizer_state", trainable = false}
  train.param @optimizer.step : tensor<f32> {role = "optimizer_state", trainable = false}
  func.func @forward(%x : tensor<4x6xf32>) -> tensor<4x3xf32> {
    %w1 = train.get @fc1.weight : tensor<8x6xf32>
    %b1 = train.get @fc1.bias : tensor<8xf32>
    %h0 = train.linear %x, %w1 : (tensor<4x6xf32>, tensor<8x6xf32>) -> tensor<4x8xf32>
    %h1 = train.add %h0, %b1 : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    %h = train.relu %h1 : tensor<4x8xf32>
    %w2 = train.get @fc2.weight : tensor<3x8xf32>
    %b2 = train.get @fc2.bias : tensor<3xf32>
    %y0 = train.linear %h, %w2 : (tensor<4x8xf32>, tensor<3x8xf32>) -> tensor<4x3xf32>
    %y = train.add %y0, %b2 : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
    func.return %y : tensor<4x3xf32>
  }
  func.func @train_step(%x : tensor<4x6xf32>, %labels : tensor<4xi64>) -> tensor<f32> {
    %w1 = train.get @fc1.weight : tensor<8x6xf32>
    %b1 = train.get @fc1.bias : tensor<8xf32>
    %h0 = train.linear %x, %w1 : (tensor<4x6xf32>, tensor<8x6xf32>) -> tensor<4x8xf32>
    %h1 = train.add %h0, %b1 : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    %h = train.relu %h1 : tensor<4x8xf32>
    %w2 = train.get @fc2.weight : tensor<3x8xf32>
    %b2 = train.get @fc2.bias : tensor<3xf32>
    %y0 = train.linear %h, %w2 : (tensor<4x8xf32>, tensor<3x8xf32>) -> tensor<4x3xf32>
    %y = train.add %y0, %b2 : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
    %loss = train.cross_entropy %y, %labels : (tensor<4x3xf32>, tensor<4xi64>) -> tensor<f32>
    %one = train.constant dense<1.0> : tensor<f32>
    %dy = train.cross_entropy_backward %y, %labels, %one : (tensor<4x3xf32>, tensor<4xi64>, tensor<f32>) -> tensor<4x3xf32>
    %db2 = train.sum %dy {axes = [0]} : (tensor<4x3xf32>) -> tensor<3xf32>
    %dw2 = train.linear_backward_weight %h, %dy : (tensor<4x8xf32>, tensor<4x3xf32>) -> tensor<3x8xf32>
    %dh = train.matmul %dy, %w2 : (tensor<4x3xf32>, tensor<3x8xf32>) -> tensor<4x8xf32>
    %zero = train.constant dense<0.0> : tensor<f32>
    %pos = train.gt %h1, %zero : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xi1>
    %dh1 = train.where %pos, %dh, %zero : (tensor<4x8xi1>, tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
    %db1 = train.sum %dh1 {axes = [0]} : (tensor<4x8xf32>) -> tensor<8xf32>
    %dw1 = train.linear_backward_weight %x, %dh1 : (tensor<4x6xf32>, tensor<4x8xf32>) -> tensor<8x6xf32>
    %t = train.get @optimizer.step : tensor<f32>
    %t1 = train.add %t, %one : tensor<f32>
    train.set @optimizer.step, %t1 : tensor<f32>
    %m1 = train.get @fc1.weight.momentum : tensor<8x6xf32>
    %w1n, %m1n = train.sgd %w1, %dw1, %m1, %t1 {lr = 0.1, momentum = 0.9} : (tensor<8x6xf32>, tensor<8x6xf32>, tensor<8x6xf32>, tensor<f32>) -> (tensor<8x6xf32>, tensor<8x6xf32>)
    train.set @fc1.weight, %w1n : tensor<8x6xf32>
    train.set @fc1.weight.momentum, %m1n : tensor<8x6xf32>
    %mb1 = train.get @fc1.bias.momentum : tensor<8xf32>
    %b1n, %mb1n = train.sgd %b1, %db1, %mb1, %t1 {lr = 0.1, momentum = 0.9} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>)
    train.set @fc1.bias, %b1n : tensor<8xf32>
    train.set @fc1.bias.momentum, %mb1n : tensor<8xf32>
    %m2 = train.get @fc2.weight.momentum : tensor<3x8xf32>
    %w2n, %m2n = train.sgd %w2, %dw2, %m2, %t1 {lr = 0.1, momentum = 0.9} : (tensor<3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>, tensor<f32>) -> (tensor<3x8xf32>, tensor<3x8xf32>)
    train.set @fc2.weight, %w2n : tensor<3x8xf32>
    train.set @fc2.weight.momentum, %m2n : tensor<3x8xf32>
    %mb2 = train.get @fc2.bias.momentum : tensor<3xf32>
    %b2n, %mb2n = train.sgd %b2, %db2, %mb2, %t1 {lr = 0.1, momentum = 0.9} : (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<f32>) -> (tensor<3xf32>, tensor<3xf32>)
    train.set @fc2.bias, %b2n : tensor<3xf32>
    train.set @fc2.bias.momentum, %mb2n : tensor<3xf32>
    func.return %loss : tensor<f32>
  }
}

// CHECK:      train.param @fc1.weight : tensor<8x6xf32> {role = "weight", trainable = true}
// CHECK-NEXT: train.param @fc1.bias : tensor<8xf32> {role = "bias", trainable = false}
// CHECK-NEXT: train.param @fc2.weight : tensor<3x8xf32> {role = "weight", trainable = false}
// CHECK-NEXT: train.param @fc2.bias : tensor<3xf32> {role = "bias", trainable = true}
// CHECK-NEXT: train.param @fc1.weight.momentum : tensor<8x3xf32> {role = "optimizer_state", trainable = false}
// CHECK-NEXT: train.param @fc2.bias.momentum : tensor<3xf32> {role = "optimizer_state", trainable = false}
// CHECK-NEXT: train.param @optimizer.step
// CHECK:      func.func @train_step
// CHECK:      %m1 = train.get @fc1.weight.momentum : tensor<8x3xf32>
// CHECK-NEXT: %[[P:.*]] = train.slice %w1 {axes = [1], starts = [0], ends = [3], steps = [1]} : (tensor<8x6xf32>) -> tensor<8x3xf32>
// CHECK-NEXT: %[[G:.*]] = train.slice %dw1 {axes = [1], starts = [0], ends = [3], steps = [1]} : (tensor<8x6xf32>) -> tensor<8x3xf32>
// CHECK-NEXT: %[[NEW:.*]], %[[M:.*]] = train.sgd %[[P]], %[[G]], %m1, %t1 {lr = 0.1, momentum = 0.9}
// CHECK-NEXT: train.set_slice @fc1.weight, %[[NEW]] {axis = 1, start = 0} : tensor<8x3xf32>
// CHECK-NEXT: train.set @fc1.weight.momentum, %[[M]] : tensor<8x3xf32>
// CHECK-NOT:  train.set @fc1.bias
// CHECK-NOT:  train.set @fc2.weight
// CHECK:      train.set @fc2.bias, %b2n
// CHECK-NEXT: train.set @fc2.bias.momentum, %mb2n
// CHECK-NEXT: func.return %loss

// the last layer is fc2; bias mode trains fc2.bias only
// BIAS:      train.param @fc2.weight : tensor<3x8xf32> {role = "weight", trainable = false}
// BIAS-NEXT: train.param @fc2.bias : tensor<3xf32> {role = "bias", trainable = true}
// BIAS-NOT:  train.sgd %w
// BIAS:      train.sgd %b2, %db2

// NOMATCH: error: pass 'sparse-backprop' failed: <inline scheme>:1:17: `fc3.*` matches no parameter or layer name
// NOMATCH-NEXT: default frozen; fc3.*: full
// NOMATCH-NEXT: {{^}}                  ^^^^^{{$}}

// RATIO: <inline scheme>:1:19: ratio 0 is outside (0, 1]
