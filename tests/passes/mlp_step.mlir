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
