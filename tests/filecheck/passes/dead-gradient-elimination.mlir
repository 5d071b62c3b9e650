// RUN: pock-opt %s -p dead-gradient-elimination | filecheck %s
// RUN: pock-opt %s -p dead-gradient-elimination --stats 2>&1 >/dev/null | filecheck %s --check-prefix=STATS

// The MLP step after sparse-backprop{scheme="default frozen; fc1.weight: ratio 1/2; fc2.bias: full"}:
// fc1.weight keeps its first 3 of 6 input columns, fc2.bias is trained, the rest is frozen.
// DGE drops dW2 and db1, computes dW1[:, :3] from x[:, :3] (sliced where x enters the step),
// and moves the ReLU mask into the forward part so h1 is not saved.
builtin.module {
  train.param @fc1.weight : tensor<8x6xf32> {role = "weight", trainable = true}
  train.param @fc1.bias : tensor<8xf32> {role = "bias", trainable = false}
  train.param @fc2.weight : tensor<3x8xf32> {role = "weight", trainable = false}
  train.param @fc2.bias : tensor<3xf32> {role = "bias", trainable = true}
  train.param @fc1.weight.momentum : tensor<8x3xf32> {role = "optimizer_state", trainable = false}
  train.param @fc2.bias.momentum : tensor<3xf32> {role = "optimizer_state", trainable = false}
  train.param @optimizer.step : tensor<f32> {role = "optimizer_state", trainable = false}
  func.func @forward(%x: tensor<4x6xf32>) -> tensor<4x3xf32> {
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
  func.func @train_step(%x: tensor<4x6xf32>, %labels: tensor<4xi64>) -> tensor<f32> {
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
    %one = train.constant dense<1.000000e+00> : tensor<f32>
    %dy = train.cross_entropy_backward %y, %labels, %one : (tensor<4x3xf32>, tensor<4xi64>, tensor<f32>) -> tensor<4x3xf32>
    %db2 = train.sum %dy {axes = [0]} : (tensor<4x3xf32>) -> tensor<3xf32>
    %dw2 = train.linear_backward_weight %h, %dy : (tensor<4x8xf32>, tensor<4x3xf32>) -> tensor<3x8xf32>
    %dh = train.matmul %dy, %w2 : (tensor<4x3xf32>, tensor<3x8xf32>) -> tensor<4x8xf32>
    %zero = train.constant dense<0.000000e+00> : tensor<f32>
    %pos = train.gt %h1, %zero : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xi1>
    %dh1 = train.where %pos, %dh, %zero : (tensor<4x8xi1>, tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
    %db1 = train.sum %dh1 {axes = [0]} : (tensor<4x8xf32>) -> tensor<8xf32>
    %dw1 = train.linear_backward_weight %x, %dh1 : (tensor<4x6xf32>, tensor<4x8xf32>) -> tensor<8x6xf32>
    %t = train.get @optimizer.step : tensor<f32>
    %t1 = train.add %t, %one : tensor<f32>
    train.set @optimizer.step, %t1 : tensor<f32>
    %m1 = train.get @fc1.weight.momentum : tensor<8x3xf32>
    %0 = train.slice %w1 {axes = [1], starts = [0], ends = [3], steps = [1]} : (tensor<8x6xf32>) -> tensor<8x3xf32>
    %1 = train.slice %dw1 {axes = [1], starts = [0], ends = [3], steps = [1]} : (tensor<8x6xf32>) -> tensor<8x3xf32>
    %2, %3 = train.sgd %0, %1, %m1, %t1 {lr = 0.1, momentum = 0.9} : (tensor<8x3xf32>, tensor<8x3xf32>, tensor<8x3xf32>, tensor<f32>) -> (tensor<8x3xf32>, tensor<8x3xf32>)
    train.set_slice @fc1.weight, %2 {axis = 1, start = 0} : tensor<8x3xf32>
    train.set @fc1.weight.momentum, %3 : tensor<8x3xf32>
    %mb2 = train.get @fc2.bias.momentum : tensor<3xf32>
    %b2n, %mb2n = train.sgd %b2, %db2, %mb2, %t1 {lr = 0.1, momentum = 0.9} : (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<f32>) -> (tensor<3xf32>, tensor<3xf32>)
    train.set @fc2.bias, %b2n : tensor<3xf32>
    train.set @fc2.bias.momentum, %mb2n : tensor<3xf32>
    func.return %loss : tensor<f32>
  }
}

// CHECK:      func.func @train_step(%x: tensor<4x6xf32>, %labels: tensor<4xi64>) -> tensor<f32> {
// CHECK-NEXT:   %[[XS:.*]] = train.slice %x {axes = [1], starts = [0], ends = [3], steps = [1]} : (tensor<4x6xf32>) -> tensor<4x3xf32>
// CHECK:        %h1 = train.add %h0, %b1
// CHECK-NEXT:   %zero = train.constant dense<0.000000e+00> : tensor<f32>
// CHECK-NEXT:   %pos = train.gt %h1, %zero : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xi1>
// CHECK-NEXT:   %h = train.relu %h1
// CHECK:        %loss = train.cross_entropy
// CHECK-NOT:    train.linear_backward_weight %h
// CHECK-NOT:    %db1
// CHECK:        %[[DW:.*]] = train.linear_backward_weight %[[XS]], %dh1 : (tensor<4x3xf32>, tensor<4x8xf32>) -> tensor<8x3xf32>
// CHECK-NEXT:   %[[NEW:.*]], %{{.*}} = train.sgd %{{.*}}, %[[DW]], %m1, %t1
// CHECK-NEXT:   train.set_slice @fc1.weight, %[[NEW]] {axis = 1, start = 0} : tensor<8x3xf32>

// forward 664 + the mask 32; backward CE' 60, Σdy 12, dh 192, where 32, dW1[:, :3] 192; SGD 5·27 + 1
// saved for backward: x[:, :3] 48 B, logits 48 B, the mask 32 B, labels 32 B
// STATS: // @train_step: 33 ops
// STATS-NEXT: FLOPs forward 696 backward 488 optimizer 136
// STATS-NEXT: saved for backward 160 B in 4 values; trained 27 elements in 2 tensors
