// Verifier and parser errors of the train dialect: each names the op and the offending
// shapes or attribute, at the line of the op (checked by --verify-diagnostics).
// RUN: pock-opt %s --split-input-file --verify-diagnostics

func.func @conv_groups(%x : tensor<1x3x8x8xf32>, %w : tensor<4x2x3x3xf32>) {
  // expected-error @+1 {{train.conv2d: input channels 3, weight 4x2x3x3 and groups 1 disagree}}
  %y = train.conv2d %x, %w : (tensor<1x3x8x8xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x6x6xf32>
  func.return
}

// -----

func.func @conv_result(%x : tensor<1x3x8x8xf32>, %w : tensor<4x3x3x3xf32>) {
  // expected-error @+1 {{train.conv2d: result types (tensor<1x4x8x8xf32>) do not match the inferred (tensor<1x4x6x6xf32>) for operands (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>)}}
  %y = train.conv2d %x, %w : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>
  func.return
}

// -----

func.func @conv_window(%x : tensor<1x3x2x2xf32>, %w : tensor<4x3x3x3xf32>) {
  // expected-error @+1 {{train.conv2d: window 3 (dilation 1) larger than padded input 2}}
  %y = train.conv2d %x, %w : (tensor<1x3x2x2xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x1x1xf32>
  func.return
}

// -----

func.func @conv_stride(%x : tensor<1x3x8x8xf32>, %w : tensor<4x3x3x3xf32>) {
  // expected-error @+1 {{train.conv2d: stride must be two positive integers, got [0, 1]}}
  %y = train.conv2d %x, %w {stride = [0, 1]} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
  func.return
}

// -----

func.func @matmul(%a : tensor<2x3xf32>, %b : tensor<4x5xf32>) {
  // expected-error @+1 {{train.matmul: contraction dims differ: 2x3 x 4x5}}
  %y = train.matmul %a, %b : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x5xf32>
  func.return
}

// -----

func.func @linear(%x : tensor<8x16xf32>, %w : tensor<4x15xf32>) {
  // expected-error @+1 {{train.linear: input 8x16 does not fit weight 4x15 ([out, in])}}
  %y = train.linear %x, %w : (tensor<8x16xf32>, tensor<4x15xf32>) -> tensor<8x4xf32>
  func.return
}

// -----

func.func @add_broadcast(%a : tensor<2x3xf32>, %b : tensor<4xf32>) {
  // expected-error @+1 {{train.add: shapes 2x3, 4 do not broadcast}}
  %y = train.add %a, %b : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

func.func @add_elements(%a : tensor<3xf32>, %b : tensor<3xf64>) {
  // expected-error @+1 {{train.add: element types differ: tensor<3xf32> vs tensor<3xf64>}}
  %y = train.add %a, %b : (tensor<3xf32>, tensor<3xf64>) -> tensor<3xf32>
  func.return
}

// -----

func.func @sqrt_int(%a : tensor<4xi64>) {
  // expected-error @+1 {{train.sqrt: expects a float tensor, got tensor<4xi64>}}
  %y = train.sqrt %a : tensor<4xi64>
  func.return
}

// -----

func.func @sub_mask(%a : tensor<4xi1>) {
  // expected-error @+1 {{train.sub: expects a numeric (non-i1) tensor, got tensor<4xi1>}}
  %y = train.sub %a, %a : tensor<4xi1>
  func.return
}

// -----

func.func @not_float(%a : tensor<4xf32>) {
  // expected-error @+1 {{train.logical_not: expects an i1 tensor, got tensor<4xf32>}}
  %y = train.logical_not %a : tensor<4xf32>
  func.return
}

// -----

func.func @and_float(%a : tensor<4xf32>) {
  // expected-error @+1 {{train.and: expects an integer or i1 tensor, got tensor<4xf32>}}
  %y = train.and %a, %a : tensor<4xf32>
  func.return
}

// -----

func.func @where_cond(%c : tensor<4xf32>, %a : tensor<4xf32>) {
  // expected-error @+1 {{train.where: condition must be i1, got tensor<4xf32>}}
  %y = train.where %c, %a, %a : tensor<4xf32>
  func.return
}

// -----

func.func @gelu(%a : tensor<4xf32>) {
  // expected-error @+1 {{train.gelu: approximate must be 'none' or 'tanh', got 'fast'}}
  %y = train.gelu %a {approximate = "fast"} : tensor<4xf32>
  func.return
}

// -----

func.func @cast(%a : tensor<4xf32>) {
  // expected-error @+1 {{train.cast: cannot cast to 'f8'; known: f16, bf16, f32, f64, i64, i32, i1}}
  %y = train.cast %a {to = "f8"} : (tensor<4xf32>) -> tensor<4xf32>
  func.return
}

// -----

func.func @reshape(%a : tensor<2x3xf32>) {
  // expected-error @+1 {{train.reshape: cannot reshape 2x3 to [4, 2]}}
  %y = train.reshape %a {shape = [4, 2]} : (tensor<2x3xf32>) -> tensor<4x2xf32>
  func.return
}

// -----

func.func @transpose(%a : tensor<2x3xf32>) {
  // expected-error @+1 {{train.transpose: perm [0, 0] is not a permutation of rank 2}}
  %y = train.transpose %a {perm = [0, 0]} : (tensor<2x3xf32>) -> tensor<2x2xf32>
  func.return
}

// -----

func.func @broadcast(%a : tensor<3xf32>) {
  // expected-error @+1 {{train.broadcast: shapes 3, 2x4 do not broadcast}}
  %y = train.broadcast %a {shape = [2, 4]} : (tensor<3xf32>) -> tensor<2x4xf32>
  func.return
}

// -----

func.func @slice(%a : tensor<4x3xf32>) {
  // expected-error @+1 {{train.slice: slice [0:5:1] out of bounds for dim 0 of size 4}}
  %y = train.slice %a {axes = [0], starts = [0], ends = [5], steps = [1]} : (tensor<4x3xf32>) -> tensor<5x3xf32>
  func.return
}

// -----

func.func @concat(%a : tensor<4x3xf32>, %b : tensor<4x2xf32>) {
  // expected-error @+1 {{train.concat: shapes 4x3, 4x2 differ off axis 0}}
  %y = train.concat %a, %b {axis = 0} : (tensor<4x3xf32>, tensor<4x2xf32>) -> tensor<8x3xf32>
  func.return
}

// -----

func.func @gather(%t : tensor<10x4xf32>, %i : tensor<3xf32>) {
  // expected-error @+1 {{train.gather: indices must be integers, got tensor<3xf32>}}
  %y = train.gather %t, %i : (tensor<10x4xf32>, tensor<3xf32>) -> tensor<3x4xf32>
  func.return
}

// -----

func.func @sum_axis(%a : tensor<2x3xf32>) {
  // expected-error @+1 {{train.sum: axis 2 out of range for rank 2}}
  %y = train.sum %a {axes = [2]} : (tensor<2x3xf32>) -> tensor<2xf32>
  func.return
}

// -----

func.func @sum_repeated(%a : tensor<2x3xf32>) {
  // expected-error @+1 {{train.sum: repeated axis in [1, -1]}}
  %y = train.sum %a {axes = [1, -1]} : (tensor<2x3xf32>) -> tensor<2xf32>
  func.return
}

// -----

func.func @softmax_scalar(%a : tensor<f32>) {
  // expected-error @+1 {{train.softmax: needs rank >= 1}}
  %y = train.softmax %a : tensor<f32>
  func.return
}

// -----

func.func @batch_norm(%x : tensor<2x8x4x4xf32>, %g : tensor<4xf32>, %c : tensor<8xf32>) {
  // expected-error @+1 {{train.batch_norm: gamma must be [8], got 4}}
  %y = train.batch_norm %x, %g, %c, %c, %c : (tensor<2x8x4x4xf32>, tensor<4xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8x4x4xf32>
  func.return
}

// -----

func.func @layer_norm(%x : tensor<2x8xf32>, %g : tensor<4xf32>) {
  // expected-error @+1 {{train.layer_norm: affine parameter 4 must be 8}}
  %y = train.layer_norm %x, %g, %g : (tensor<2x8xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x8xf32>
  func.return
}

// -----

func.func @avg_pool_padding(%x : tensor<1x1x4x4xf32>) {
  // expected-error @+1 {{train.avg_pool2d: padding [2, 0, 0, 0] must be smaller than the kernel [2, 2]}}
  %y = train.avg_pool2d %x {kernel = [2, 2], padding = [2, 0, 0, 0]} : (tensor<1x1x4x4xf32>) -> tensor<1x1x5x3xf32>
  func.return
}

// -----

func.func @cross_entropy(%l : tensor<4x10xf32>, %y : tensor<5xi64>) {
  // expected-error @+1 {{train.cross_entropy: logits 4x10 and labels 5 do not fit [N, C, ..] / [N, ..]}}
  %loss = train.cross_entropy %l, %y : (tensor<4x10xf32>, tensor<5xi64>) -> tensor<f32>
  func.return
}

// -----

func.func @cross_entropy_reduction(%l : tensor<4x10xf32>, %y : tensor<4xi64>) {
  // expected-error @+1 {{train.cross_entropy: reduction must be 'mean' or 'sum', got 'max'}}
  %loss = train.cross_entropy %l, %y {reduction = "max"} : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<f32>
  func.return
}

// -----

func.func @mse(%a : tensor<4xf32>, %b : tensor<3xf32>) {
  // expected-error @+1 {{train.mse: prediction tensor<4xf32> and target tensor<3xf32> differ}}
  %loss = train.mse %a, %b : (tensor<4xf32>, tensor<3xf32>) -> tensor<f32>
  func.return
}

// -----

func.func @misspelt_property(%x : tensor<1x3x8x8xf32>, %w : tensor<4x3x3x3xf32>) {
  // expected-error @+1 {{train.conv2d: unknown property 'strides'; did you mean 'stride'? (known: stride, padding, dilation, groups)}}
  %y = train.conv2d %x, %w {strides = [2, 2]} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x3x3xf32>
  func.return
}

// -----

func.func @bad_property_value(%x : tensor<1x3x8x8xf32>, %w : tensor<4x3x3x3xf32>) {
  // expected-error @+1 {{train.conv2d: bad value "two" for property 'stride' (expects a list of integers)}}
  %y = train.conv2d %x, %w {stride = "two"} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
  func.return
}

// -----

builtin.module {
  // expected-error @+1 {{train.param @w: role 'gradient' is not one of weight, bias}}
  train.param @w : tensor<4xf32> {role = "gradient", trainable = true}
}

// -----

builtin.module {
  train.param @w : tensor<4xf32> {role = "weight", trainable = true}
  func.func @get_type() {
    // expected-error @+1 {{train.get @w: type tensor<5xf32> differs from declared tensor<4xf32>}}
    %w = train.get @w : tensor<5xf32>
    func.return
  }
}

// -----

func.func @get_missing() {
  // expected-error @+1 {{train.get: no train.param @nowhere}}
  %w = train.get @nowhere : tensor<4xf32>
  func.return
}
