// RUN: pock-opt %s -p slice-propagation | filecheck %s

// A [CLS]-style head reads row 0 of the token axis. The slice moves above the GELU, the bias
// add and the linear layer, so they run on one token; the weight and bias stay whole.
builtin.module {
  train.param @fc.weight : tensor<16x8xf32> {role = "weight", trainable = true}
  train.param @fc.bias : tensor<16xf32> {role = "bias", trainable = true}
  func.func @forward(%x : tensor<2x5x8xf32>) -> tensor<2x16xf32> {
    %w = train.get @fc.weight : tensor<16x8xf32>
    %b = train.get @fc.bias : tensor<16xf32>
    %h0 = train.linear %x, %w : (tensor<2x5x8xf32>, tensor<16x8xf32>) -> tensor<2x5x16xf32>
    %h1 = train.add %h0, %b : (tensor<2x5x16xf32>, tensor<16xf32>) -> tensor<2x5x16xf32>
    %h = train.gelu %h1 : tensor<2x5x16xf32>
    %s = train.slice %h {axes = [1], starts = [0], ends = [1], steps = [1]} : (tensor<2x5x16xf32>) -> tensor<2x1x16xf32>
    %y = train.reshape %s {shape = [2, 16]} : (tensor<2x1x16xf32>) -> tensor<2x16xf32>
    func.return %y : tensor<2x16xf32>
  }
}

// CHECK:      %{{.*}} = train.slice %x {axes = [1], starts = [0], ends = [1], steps = [1]} : (tensor<2x5x8xf32>) -> tensor<2x1x8xf32>
// CHECK-NEXT: %{{.*}} = train.linear %{{.*}}, %w : (tensor<2x1x8xf32>, tensor<16x8xf32>) -> tensor<2x1x16xf32>
// CHECK-NEXT: %{{.*}} = train.add %{{.*}}, %b : (tensor<2x1x16xf32>, tensor<16xf32>) -> tensor<2x1x16xf32>
// CHECK-NEXT: %{{.*}} = train.gelu %{{.*}} : tensor<2x1x16xf32>
// CHECK-NEXT: %{{.*}} = train.reshape %{{.*}} {shape = [2, 16]} : (tensor<2x1x16xf32>) -> tensor<2x16xf32>
// CHECK-NOT:  train.slice
