// RUN: pock-opt %s -p fusion | filecheck %s
// RUN: pock-opt %s -p "fusion{updates=false}" | filecheck %s --check-prefix=NOUPD
// RUN: pock-opt %s -p "fusion{head_bytes=0}" | filecheck %s --check-prefix=HEAD
// RUN: pock-opt %s -p "fusion{epilogues=false}" | filecheck %s --check-prefix=NOEPI

// The MLP step of autodiff (SGD with momentum). A linear with the elementwise chain on its
// output (bias add + ReLU) becomes an `epilogue` group: the GEMM applies the chain to each
// output tile; so does dx = dz·W with the ReLU backward's compare + select. Without
// epilogues those chains are one loop nest each (elementwise groups). Each weight gradient and
// its SGD update become an `update` group, whose GEMM accumulates straight into the
// momentum buffer. With head_bytes=0 the classifier counts as a big vocabulary head: its
// linear, bias, loss, loss backward and every use of the logits' gradient (bias gradient,
// dx, the weight gradient with its update) become one chunked linear_cross_entropy group,
// placed before the first op that reads its results.
builtin.module {
  train.param @fc1.weight : tensor<8x6xf32> {role = "weight", trainable = true}
  train.param @fc1.bias : tensor<8xf32> {role = "bias", trainable = true}
  train.param @fc2.weight : tensor<3x8xf32> {role = "weight", trainable = true}
  train.param @fc2.bias : tensor<3xf32> {role = "bias", trainable = true}
  train.param @optimizer.step : tensor<f32> {role = "optimizer_state", trainable = false}
  train.param @fc1.weight.momentum : tensor<8x6xf32> {role = "optimizer_state", trainable = false}
  train.param @fc1.bias.momentum : tensor<8xf32> {role = "optimizer_state", trainable = false}
  train.param @fc2.weight.momentum : tensor<3x8xf32> {role = "optimizer_state", trainable = false}
  train.param @fc2.bias.momentum : tensor<3xf32> {role = "optimizer_state", trainable = false}
  func.func @train_step(%0: tensor<4x6xf32>, %labels: tensor<4xi64>) -> tensor<f32> {
    %1 = train.get @fc1.weight : tensor<8x6xf32>
    %2 = train.get @fc1.bias : tensor<8xf32>
    %3 = train.linear %0, %1 : (tensor<4x6xf32>, tensor<8x6xf32>) -> tensor<4x8xf32>
    %4 = train.add %3, %2 : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    %5 = train.relu %4 : tensor<4x8xf32>
    %6 = train.get @fc2.weight : tensor<3x8xf32>
    %7 = train.get @fc2.bias : tensor<3xf32>
    %8 = train.linear %5, %6 : (tensor<4x8xf32>, tensor<3x8xf32>) -> tensor<4x3xf32>
    %9 = train.add %8, %7 : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
    %loss = train.cross_entropy %9, %labels : (tensor<4x3xf32>, tensor<4xi64>) -> tensor<f32>
    %10 = train.constant dense<1.000000e+00> : tensor<f32>
    %11 = train.cross_entropy_backward %9, %labels, %10 : (tensor<4x3xf32>, tensor<4xi64>, tensor<f32>) -> tensor<4x3xf32>
    %12 = train.sum %11 {axes = [0]} : (tensor<4x3xf32>) -> tensor<3xf32>
    %13 = train.matmul %11, %6 : (tensor<4x3xf32>, tensor<3x8xf32>) -> tensor<4x8xf32>
    %14 = train.linear_backward_weight %5, %11 : (tensor<4x8xf32>, tensor<4x3xf32>) -> tensor<3x8xf32>
    %15 = train.constant dense<0.000000e+00> : tensor<f32>
    %16 = train.gt %5, %15 : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xi1>
    %17 = train.where %16, %13, %15 : (tensor<4x8xi1>, tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
    %18 = train.sum %17 {axes = [0]} : (tensor<4x8xf32>) -> tensor<8xf32>
    %19 = train.linear_backward_weight %0, %17 : (tensor<4x6xf32>, tensor<4x8xf32>) -> tensor<8x6xf32>
    %optimizer.step = train.get @optimizer.step : tensor<f32>
    %step = train.add %optimizer.step, %10 : tensor<f32>
    train.set @optimizer.step, %step : tensor<f32>
    %fc1.weight = train.get @fc1.weight : tensor<8x6xf32>
    %fc1.weight.momentum = train.get @fc1.weight.momentum : tensor<8x6xf32>
    %fc1.weight.new, %fc1.weight.momentum.new = train.sgd %fc1.weight, %19, %fc1.weight.momentum, %step {lr = 0.1, momentum = 0.9} : (tensor<8x6xf32>, tensor<8x6xf32>, tensor<8x6xf32>, tensor<f32>) -> (tensor<8x6xf32>, tensor<8x6xf32>)
    train.set @fc1.weight, %fc1.weight.new : tensor<8x6xf32>
    train.set @fc1.weight.momentum, %fc1.weight.momentum.new : tensor<8x6xf32>
    %fc1.bias = train.get @fc1.bias : tensor<8xf32>
    %fc1.bias.momentum = train.get @fc1.bias.momentum : tensor<8xf32>
    %fc1.bias.new, %fc1.bias.momentum.new = train.sgd %fc1.bias, %18, %fc1.bias.momentum, %step {lr = 0.1, momentum = 0.9} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>)
    train.set @fc1.bias, %fc1.bias.new : tensor<8xf32>
    train.set @fc1.bias.momentum, %fc1.bias.momentum.new : tensor<8xf32>
    %fc2.weight = train.get @fc2.weight : tensor<3x8xf32>
    %fc2.weight.momentum = train.get @fc2.weight.momentum : tensor<3x8xf32>
    %fc2.weight.new, %fc2.weight.momentum.new = train.sgd %fc2.weight, %14, %fc2.weight.momentum, %step {lr = 0.1, momentum = 0.9} : (tensor<3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>, tensor<f32>) -> (tensor<3x8xf32>, tensor<3x8xf32>)
    train.set @fc2.weight, %fc2.weight.new : tensor<3x8xf32>
    train.set @fc2.weight.momentum, %fc2.weight.momentum.new : tensor<3x8xf32>
    %fc2.bias = train.get @fc2.bias : tensor<3xf32>
    %fc2.bias.momentum = train.get @fc2.bias.momentum : tensor<3xf32>
    %fc2.bias.new, %fc2.bias.momentum.new = train.sgd %fc2.bias, %12, %fc2.bias.momentum, %step {lr = 0.1, momentum = 0.9} : (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<f32>) -> (tensor<3xf32>, tensor<3xf32>)
    train.set @fc2.bias, %fc2.bias.new : tensor<3xf32>
    train.set @fc2.bias.momentum, %fc2.bias.momentum.new : tensor<3xf32>
    func.return %loss : tensor<f32>
  }
}

// CHECK:      train.fused(%{{.*}}) {kind = "epilogue"}
// CHECK-NEXT: ^{{.*}}:
// CHECK-NEXT:   train.linear
// CHECK-NEXT:   train.add
// CHECK-NEXT:   train.relu
// CHECK-NEXT:   train.yield
// CHECK:      train.fused(%{{.*}}) {kind = "epilogue"}
// CHECK-NEXT: ^{{.*}}:
// CHECK-NEXT:   train.linear
// CHECK-NEXT:   train.add
// CHECK-NEXT:   train.yield
// CHECK:      train.cross_entropy
// CHECK:      train.fused(%{{.*}}) {kind = "epilogue"}
// CHECK-NEXT: ^{{.*}}:
// CHECK-NEXT:   train.matmul
// CHECK-NEXT:   train.gt
// CHECK-NEXT:   train.where
// CHECK-NEXT:   train.yield
// CHECK:      train.fused(%{{.*}}) {kind = "update"}
// CHECK-NEXT: ^{{.*}}:
// CHECK-NEXT:   train.linear_backward_weight
// CHECK-NEXT:   train.sgd
// CHECK-NEXT:   train.yield
// CHECK:      train.set @fc2.weight,

// NOUPD-NOT:  kind = "update"
// NOUPD:      train.linear_backward_weight

// HEAD:      train.fused({{.*}}) {kind = "linear_cross_entropy"}
// HEAD-NEXT: ^{{.*}}:
// HEAD-NEXT:   train.linear
// HEAD-NEXT:   train.add
// HEAD-NEXT:   train.cross_entropy
// HEAD-NEXT:   train.cross_entropy_backward
// HEAD-NEXT:   train.sum
// HEAD-NEXT:   train.matmul
// HEAD-NEXT:   train.linear_backward_weight
// HEAD-NEXT:   train.sgd
// HEAD-NEXT:   train.yield
// HEAD:      train.where
// HEAD:      func.return %loss

// NOEPI-NOT:  kind = "epilogue"
// NOEPI:      train.linear
// NOEPI-NEXT: train.fused(%{{.*}}) {kind = "elementwise"}
// NOEPI-NEXT: ^{{.*}}:
// NOEPI-NEXT:   train.add
// NOEPI-NEXT:   train.relu
// NOEPI-NEXT:   train.yield
// NOEPI:      train.matmul
// NOEPI:      train.fused(%{{.*}}) {kind = "elementwise"}
// NOEPI-NEXT: ^{{.*}}:
// NOEPI-NEXT:   train.gt
// NOEPI-NEXT:   train.where
