// A two-layer MLP classifier: 16 features → 32 hidden (ReLU) → 4 classes.
builtin.module {
  train.param @fc1.weight : tensor<32x16xf32> {role = "weight", trainable = true}
  train.param @fc1.bias : tensor<32xf32> {role = "bias", trainable = true}
  train.param @fc2.weight : tensor<4x32xf32> {role = "weight", trainable = true}
  train.param @fc2.bias : tensor<4xf32> {role = "bias", trainable = true}
  func.func @forward(%x : tensor<8x16xf32>) -> tensor<8x4xf32> {
    %w1 = train.get @fc1.weight : tensor<32x16xf32>
    %b1 = train.get @fc1.bias : tensor<32xf32>
    %h0 = train.linear %x, %w1 : (tensor<8x16xf32>, tensor<32x16xf32>) -> tensor<8x32xf32>
    %h1 = train.add %h0, %b1 : (tensor<8x32xf32>, tensor<32xf32>) -> tensor<8x32xf32>
    %h = train.relu %h1 : tensor<8x32xf32>
    %w1b = train.get @fc1.weight : tensor<32x16xf32>
    %w2 = train.get @fc2.weight : tensor<4x32xf32>
    %b2 = train.get @fc2.bias : tensor<4xf32>
    %y0 = train.linear %h, %w2 : (tensor<8x32xf32>, tensor<4x32xf32>) -> tensor<8x4xf32>
    %y = train.add %y0, %b2 : (tensor<8x4xf32>, tensor<4xf32>) -> tensor<8x4xf32>
    func.return %y : tensor<8x4xf32>
  }
}
