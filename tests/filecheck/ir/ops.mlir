// Every forward and state op of the train dialect in its custom form: the printed IR
// reads back to itself, through the generic form too (tests/ir/test_roundtrip.py checks the
// same on generated ops of every shape and attribute).
// RUN: pock-opt %s | filecheck %s
// RUN: pock-opt %s | pock-opt | filecheck %s
// RUN: pock-opt %s --generic | pock-opt | filecheck %s
// RUN: pock-opt %s --generic | filecheck %s --check-prefix=GENERIC

builtin.module {
// CHECK: builtin.module {
  train.param @conv.weight : tensor<8x3x3x3xf32> {role = "weight", trainable = true}
  // CHECK-NEXT: train.param @conv.weight : tensor<8x3x3x3xf32> {role = "weight", trainable = true}
  train.param @dw.weight : tensor<8x1x3x3xf32> {role = "weight", trainable = false}
  // CHECK-NEXT: train.param @dw.weight : tensor<8x1x3x3xf32> {role = "weight", trainable = false}
  train.param @bn.mean : tensor<8xf32> {role = "running_mean", trainable = false}
  // CHECK-NEXT: train.param @bn.mean : tensor<8xf32> {role = "running_mean", trainable = false}
  train.param @step : tensor<f32> {role = "optimizer_state", trainable = false}
  // CHECK-NEXT: train.param @step : tensor<f32> {role = "optimizer_state", trainable = false}
  func.func @cnn(%x : tensor<2x3x16x16xf32>, %g : tensor<8xf32>, %b : tensor<8xf32>, %v : tensor<8xf32>) -> tensor<2x8x1x1xf32> {
  // CHECK-LABEL: func.func @cnn(%x: tensor<2x3x16x16xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>, %v: tensor<8xf32>) -> tensor<2x8x1x1xf32> {
    %w = train.get @conv.weight : tensor<8x3x3x3xf32>
    // CHECK-NEXT: %w = train.get @conv.weight : tensor<8x3x3x3xf32>
    %y = train.conv2d %x, %w {stride = [2, 2], padding = [1, 1, 1, 1]} : (tensor<2x3x16x16xf32>, tensor<8x3x3x3xf32>) -> tensor<2x8x8x8xf32>
    // CHECK-NEXT: %y = train.conv2d %x, %w {stride = [2, 2], padding = [1, 1, 1, 1]} : (tensor<2x3x16x16xf32>, tensor<8x3x3x3xf32>) -> tensor<2x8x8x8xf32>
    %wd = train.get @dw.weight : tensor<8x1x3x3xf32>
    // CHECK-NEXT: %wd = train.get @dw.weight : tensor<8x1x3x3xf32>
    %yd = train.conv2d %y, %wd {padding = [0, 1, 2, 1], dilation = [2, 1], groups = 8} : (tensor<2x8x8x8xf32>, tensor<8x1x3x3xf32>) -> tensor<2x8x6x8xf32>
    // CHECK-NEXT: %yd = train.conv2d %y, %wd {padding = [0, 1, 2, 1], dilation = [2, 1], groups = 8} : (tensor<2x8x8x8xf32>, tensor<8x1x3x3xf32>) -> tensor<2x8x6x8xf32>
    %m = train.get @bn.mean : tensor<8xf32>
    // CHECK-NEXT: %m = train.get @bn.mean : tensor<8xf32>
    %n = train.batch_norm %yd, %g, %b, %m, %v {eps = 1.0e-03} : (tensor<2x8x6x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8x6x8xf32>
    // CHECK-NEXT: %n = train.batch_norm %yd, %g, %b, %m, %v {eps = 0.001} : (tensor<2x8x6x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8x6x8xf32>
    %r = train.relu6 %n : tensor<2x8x6x8xf32>
    // CHECK-NEXT: %r = train.relu6 %n : tensor<2x8x6x8xf32>
    %mp = train.max_pool2d %r {kernel = [3, 3], stride = [2, 2], padding = [1, 1, 1, 1], ceil_mode = true} : (tensor<2x8x6x8xf32>) -> tensor<2x8x4x5xf32>
    // CHECK-NEXT: %mp = train.max_pool2d %r {kernel = [3, 3], stride = [2, 2], padding = [1, 1, 1, 1], ceil_mode = true} : (tensor<2x8x6x8xf32>) -> tensor<2x8x4x5xf32>
    %ap = train.avg_pool2d %mp {kernel = [2, 2], stride = [2, 2], count_include_pad = false} : (tensor<2x8x4x5xf32>) -> tensor<2x8x2x2xf32>
    // CHECK-NEXT: %ap = train.avg_pool2d %mp {kernel = [2, 2], stride = [2, 2], count_include_pad = false} : (tensor<2x8x4x5xf32>) -> tensor<2x8x2x2xf32>
    %gp = train.global_avg_pool %ap : (tensor<2x8x2x2xf32>) -> tensor<2x8x1x1xf32>
    // CHECK-NEXT: %gp = train.global_avg_pool %ap : (tensor<2x8x2x2xf32>) -> tensor<2x8x1x1xf32>
    func.return %gp : tensor<2x8x1x1xf32>
    // CHECK-NEXT: func.return %gp : tensor<2x8x1x1xf32>
  }
  // CHECK-NEXT: }
  func.func @attention(%q : tensor<2x4x8xf32>, %k : tensor<2x4x8xf32>, %mask : tensor<4x4xi1>, %gamma : tensor<8xf32>, %beta : tensor<8xf32>, %w : tensor<16x8xf32>) -> tensor<2x4x16xf32> {
  // CHECK-LABEL: func.func @attention(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %mask: tensor<4x4xi1>, %gamma: tensor<8xf32>, %beta: tensor<8xf32>, %w: tensor<16x8xf32>) -> tensor<2x4x16xf32> {
    %kt = train.transpose %k {perm = [0, 2, 1]} : (tensor<2x4x8xf32>) -> tensor<2x8x4xf32>
    // CHECK-NEXT: %kt = train.transpose %k {perm = [0, 2, 1]} : (tensor<2x4x8xf32>) -> tensor<2x8x4xf32>
    %s = train.matmul %q, %kt : (tensor<2x4x8xf32>, tensor<2x8x4xf32>) -> tensor<2x4x4xf32>
    // CHECK-NEXT: %s = train.matmul %q, %kt : (tensor<2x4x8xf32>, tensor<2x8x4xf32>) -> tensor<2x4x4xf32>
    %scale = train.constant dense<0.353553385> : tensor<f32>
    // CHECK-NEXT: %scale = train.constant dense<0.353553385> : tensor<f32>
    %ss = train.mul %s, %scale : (tensor<2x4x4xf32>, tensor<f32>) -> tensor<2x4x4xf32>
    // CHECK-NEXT: %ss = train.mul %s, %scale : (tensor<2x4x4xf32>, tensor<f32>) -> tensor<2x4x4xf32>
    %ninf = train.constant dense<0xFF800000> : tensor<f32>
    // CHECK-NEXT: %ninf = train.constant dense<0xff800000> : tensor<f32>
    %sm = train.where %mask, %ss, %ninf : (tensor<4x4xi1>, tensor<2x4x4xf32>, tensor<f32>) -> tensor<2x4x4xf32>
    // CHECK-NEXT: %sm = train.where %mask, %ss, %ninf : (tensor<4x4xi1>, tensor<2x4x4xf32>, tensor<f32>) -> tensor<2x4x4xf32>
    %p = train.softmax %sm : tensor<2x4x4xf32>
    // CHECK-NEXT: %p = train.softmax %sm : tensor<2x4x4xf32>
    %lp = train.log_softmax %sm {axis = 1} : tensor<2x4x4xf32>
    // CHECK-NEXT: %lp = train.log_softmax %sm {axis = 1} : tensor<2x4x4xf32>
    %o = train.matmul %p, %q : (tensor<2x4x4xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    // CHECK-NEXT: %o = train.matmul %p, %q : (tensor<2x4x4xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %ln = train.layer_norm %o, %gamma, %beta : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
    // CHECK-NEXT: %ln = train.layer_norm %o, %gamma, %beta : (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
    %rn = train.rms_norm %ln, %gamma {eps = 1.0e-06} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
    // CHECK-NEXT: %rn = train.rms_norm %ln, %gamma {eps = 1.0e-06} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
    %h = train.linear %rn, %w : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
    // CHECK-NEXT: %h = train.linear %rn, %w : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
    %ge = train.gelu %h {approximate = "tanh"} : tensor<2x4x16xf32>
    // CHECK-NEXT: %ge = train.gelu %h {approximate = "tanh"} : tensor<2x4x16xf32>
    %gn = train.gelu %ge : tensor<2x4x16xf32>
    // CHECK-NEXT: %gn = train.gelu %ge : tensor<2x4x16xf32>
    %si = train.silu %gn : tensor<2x4x16xf32>
    // CHECK-NEXT: %si = train.silu %gn : tensor<2x4x16xf32>
    func.return %si : tensor<2x4x16xf32>
    // CHECK-NEXT: func.return %si : tensor<2x4x16xf32>
  }
  // CHECK-NEXT: }
  func.func @elementwise(%a : tensor<3x4xf32>, %b : tensor<4xf32>, %i : tensor<3x4xi64>, %m : tensor<3x4xi1>) -> (tensor<3x4xf32>, tensor<3x4xi1>, tensor<3x4xi64>) {
  // CHECK-LABEL: func.func @elementwise(%a: tensor<3x4xf32>, %b: tensor<4xf32>, %i: tensor<3x4xi64>, %m: tensor<3x4xi1>) -> (tensor<3x4xf32>, tensor<3x4xi1>, tensor<3x4xi64>) {
    %0 = train.add %a, %b : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
    // CHECK-NEXT: %0 = train.add %a, %b : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
    %1 = train.sub %0, %b : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
    // CHECK-NEXT: %1 = train.sub %0, %b : (tensor<3x4xf32>, tensor<4xf32>) -> tensor<3x4xf32>
    %2 = train.mul %1, %a : tensor<3x4xf32>
    // CHECK-NEXT: %2 = train.mul %1, %a : tensor<3x4xf32>
    %3 = train.div %2, %a : tensor<3x4xf32>
    // CHECK-NEXT: %3 = train.div %2, %a : tensor<3x4xf32>
    %4 = train.pow %3, %a : tensor<3x4xf32>
    // CHECK-NEXT: %4 = train.pow %3, %a : tensor<3x4xf32>
    %5 = train.maximum %4, %a : tensor<3x4xf32>
    // CHECK-NEXT: %5 = train.maximum %4, %a : tensor<3x4xf32>
    %6 = train.minimum %5, %a : tensor<3x4xf32>
    // CHECK-NEXT: %6 = train.minimum %5, %a : tensor<3x4xf32>
    %7 = train.neg %6 : tensor<3x4xf32>
    // CHECK-NEXT: %7 = train.neg %6 : tensor<3x4xf32>
    %8 = train.abs %7 : tensor<3x4xf32>
    // CHECK-NEXT: %8 = train.abs %7 : tensor<3x4xf32>
    %9 = train.sqrt %8 : tensor<3x4xf32>
    // CHECK-NEXT: %9 = train.sqrt %8 : tensor<3x4xf32>
    %10 = train.rsqrt %9 : tensor<3x4xf32>
    // CHECK-NEXT: %10 = train.rsqrt %9 : tensor<3x4xf32>
    %11 = train.reciprocal %10 : tensor<3x4xf32>
    // CHECK-NEXT: %11 = train.reciprocal %10 : tensor<3x4xf32>
    %12 = train.exp %11 : tensor<3x4xf32>
    // CHECK-NEXT: %12 = train.exp %11 : tensor<3x4xf32>
    %13 = train.log %12 : tensor<3x4xf32>
    // CHECK-NEXT: %13 = train.log %12 : tensor<3x4xf32>
    %14 = train.tanh %13 : tensor<3x4xf32>
    // CHECK-NEXT: %14 = train.tanh %13 : tensor<3x4xf32>
    %15 = train.sin %14 : tensor<3x4xf32>
    // CHECK-NEXT: %15 = train.sin %14 : tensor<3x4xf32>
    %16 = train.cos %15 : tensor<3x4xf32>
    // CHECK-NEXT: %16 = train.cos %15 : tensor<3x4xf32>
    %17 = train.erf %16 : tensor<3x4xf32>
    // CHECK-NEXT: %17 = train.erf %16 : tensor<3x4xf32>
    %18 = train.sigmoid %17 : tensor<3x4xf32>
    // CHECK-NEXT: %18 = train.sigmoid %17 : tensor<3x4xf32>
    %19 = train.relu %18 : tensor<3x4xf32>
    // CHECK-NEXT: %19 = train.relu %18 : tensor<3x4xf32>
    %20 = train.clamp %19 {min = -1.5, max = 2.0} : tensor<3x4xf32>
    // CHECK-NEXT: %20 = train.clamp %19 {min = -1.5, max = 2.0} : tensor<3x4xf32>
    %21 = train.clamp %20 {max = 0.5} : tensor<3x4xf32>
    // CHECK-NEXT: %21 = train.clamp %20 {max = 0.5} : tensor<3x4xf32>
    %c = train.lt %21, %a : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x4xi1>
    // CHECK-NEXT: %c = train.lt %21, %a : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x4xi1>
    %c1 = train.le %21, %a : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x4xi1>
    // CHECK-NEXT: %c1 = train.le %21, %a : (tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x4xi1>
    %c2 = train.gt %i, %i : (tensor<3x4xi64>, tensor<3x4xi64>) -> tensor<3x4xi1>
    // CHECK-NEXT: %c2 = train.gt %i, %i : (tensor<3x4xi64>, tensor<3x4xi64>) -> tensor<3x4xi1>
    %c3 = train.ge %i, %i : (tensor<3x4xi64>, tensor<3x4xi64>) -> tensor<3x4xi1>
    // CHECK-NEXT: %c3 = train.ge %i, %i : (tensor<3x4xi64>, tensor<3x4xi64>) -> tensor<3x4xi1>
    %c4 = train.eq %c, %c1 : (tensor<3x4xi1>, tensor<3x4xi1>) -> tensor<3x4xi1>
    // CHECK-NEXT: %c4 = train.eq %c, %c1 : tensor<3x4xi1>
    %c5 = train.ne %c2, %c3 : (tensor<3x4xi1>, tensor<3x4xi1>) -> tensor<3x4xi1>
    // CHECK-NEXT: %c5 = train.ne %c2, %c3 : tensor<3x4xi1>
    %c6 = train.and %c4, %c5 : tensor<3x4xi1>
    // CHECK-NEXT: %c6 = train.and %c4, %c5 : tensor<3x4xi1>
    %c7 = train.or %c6, %m : tensor<3x4xi1>
    // CHECK-NEXT: %c7 = train.or %c6, %m : tensor<3x4xi1>
    %c8 = train.logical_not %c7 : tensor<3x4xi1>
    // CHECK-NEXT: %c8 = train.logical_not %c7 : tensor<3x4xi1>
    %ci = train.cast %c8 {to = "i64"} : (tensor<3x4xi1>) -> tensor<3x4xi64>
    // CHECK-NEXT: %ci = train.cast %c8 {to = "i64"} : (tensor<3x4xi1>) -> tensor<3x4xi64>
    %cj = train.and %ci, %i : tensor<3x4xi64>
    // CHECK-NEXT: %cj = train.and %ci, %i : tensor<3x4xi64>
    func.return %21, %c8, %cj : tensor<3x4xf32>, tensor<3x4xi1>, tensor<3x4xi64>
    // CHECK-NEXT: func.return %21, %c8, %cj : tensor<3x4xf32>, tensor<3x4xi1>, tensor<3x4xi64>
  }
  // CHECK-NEXT: }
  func.func @shapes(%x : tensor<2x3x4xf32>, %ids : tensor<5xi64>, %table : tensor<10x4xf32>) -> tensor<4x2xf32> {
  // CHECK-LABEL: func.func @shapes(%x: tensor<2x3x4xf32>, %ids: tensor<5xi64>, %table: tensor<10x4xf32>) -> tensor<4x2xf32> {
    %r = train.reshape %x {shape = [6, 4]} : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
    // CHECK-NEXT: %r = train.reshape %x {shape = [6, 4]} : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
    %e = train.gather %table, %ids : (tensor<10x4xf32>, tensor<5xi64>) -> tensor<5x4xf32>
    // CHECK-NEXT: %e = train.gather %table, %ids : (tensor<10x4xf32>, tensor<5xi64>) -> tensor<5x4xf32>
    %cat = train.concat %r, %e {axis = 0} : (tensor<6x4xf32>, tensor<5x4xf32>) -> tensor<11x4xf32>
    // CHECK-NEXT: %cat = train.concat %r, %e {axis = 0} : (tensor<6x4xf32>, tensor<5x4xf32>) -> tensor<11x4xf32>
    %sl = train.slice %cat {axes = [0, 1], starts = [1, 0], ends = [9, 4], steps = [2, 1]} : (tensor<11x4xf32>) -> tensor<4x4xf32>
    // CHECK-NEXT: %sl = train.slice %cat {axes = [0, 1], starts = [1, 0], ends = [9, 4], steps = [2, 1]} : (tensor<11x4xf32>) -> tensor<4x4xf32>
    %pd = train.pad %sl {pads = [0, 1, 0, -1], value = -1.0} : (tensor<4x4xf32>) -> tensor<4x4xf32>
    // CHECK-NEXT: %pd = train.pad %sl {pads = [0, 1, 0, -1], value = -1.0} : tensor<4x4xf32>
    %ix = train.constant dense<[[0, 1], [1, 2], [2, 3], [3, 0]]> : tensor<4x2xi64>
    // CHECK-NEXT: %ix = train.constant dense<{{\[\[}}0, 1], [1, 2], [2, 3], [3, 0]]> : tensor<4x2xi64>
    %ge = train.gather_elements %pd, %ix {axis = 1} : (tensor<4x4xf32>, tensor<4x2xi64>) -> tensor<4x2xf32>
    // CHECK-NEXT: %ge = train.gather_elements %pd, %ix {axis = 1} : (tensor<4x4xf32>, tensor<4x2xi64>) -> tensor<4x2xf32>
    %bc = train.broadcast %ge {shape = [3, 4, 2]} : (tensor<4x2xf32>) -> tensor<3x4x2xf32>
    // CHECK-NEXT: %bc = train.broadcast %ge {shape = [3, 4, 2]} : (tensor<4x2xf32>) -> tensor<3x4x2xf32>
    %su = train.sum %bc {axes = [0]} : (tensor<3x4x2xf32>) -> tensor<4x2xf32>
    // CHECK-NEXT: %su = train.sum %bc {axes = [0]} : (tensor<3x4x2xf32>) -> tensor<4x2xf32>
    %me = train.mean %bc {axes = [0, 2], keepdims = true} : (tensor<3x4x2xf32>) -> tensor<1x4x1xf32>
    // CHECK-NEXT: %me = train.mean %bc {axes = [0, 2], keepdims = true} : (tensor<3x4x2xf32>) -> tensor<1x4x1xf32>
    %mx = train.max %bc {axes = [-1]} : (tensor<3x4x2xf32>) -> tensor<3x4xf32>
    // CHECK-NEXT: %mx = train.max %bc {axes = [-1]} : (tensor<3x4x2xf32>) -> tensor<3x4xf32>
    %cs = train.cumsum %su {axis = 0} : tensor<4x2xf32>
    // CHECK-NEXT: %cs = train.cumsum %su {axis = 0} : tensor<4x2xf32>
    %pos = train.gt %cs, %su : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x2xi1>
    // CHECK-NEXT: %pos = train.gt %cs, %su : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x2xi1>
    %an = train.any %pos {axes = [0, 1]} : (tensor<4x2xi1>) -> tensor<i1>
    // CHECK-NEXT: %an = train.any %pos {axes = [0, 1]} : (tensor<4x2xi1>) -> tensor<i1>
    func.return %cs : tensor<4x2xf32>
    // CHECK-NEXT: func.return %cs : tensor<4x2xf32>
  }
  // CHECK-NEXT: }
  func.func @losses(%logits : tensor<4x10xf32>, %labels : tensor<4xi64>, %pred : tensor<4x3xf32>, %target : tensor<4x3xf32>) -> (tensor<f32>, tensor<f32>) {
  // CHECK-LABEL: func.func @losses(%logits: tensor<4x10xf32>, %labels: tensor<4xi64>, %pred: tensor<4x3xf32>, %target: tensor<4x3xf32>) -> (tensor<f32>, tensor<f32>) {
    %ce = train.cross_entropy %logits, %labels {ignore_index = 0} : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<f32>
    // CHECK-NEXT: %ce = train.cross_entropy %logits, %labels {ignore_index = 0} : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<f32>
    %mse = train.mse %pred, %target {reduction = "sum"} : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<f32>
    // CHECK-NEXT: %mse = train.mse %pred, %target {reduction = "sum"} : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<f32>
    %one = train.constant dense<1.000000e+00> : tensor<f32>
    // CHECK-NEXT: %one = train.constant dense<1.000000e+00> : tensor<f32>
    %t = train.get @step : tensor<f32>
    // CHECK-NEXT: %t = train.get @step : tensor<f32>
    %t1 = train.add %t, %one : tensor<f32>
    // CHECK-NEXT: %t1 = train.add %t, %one : tensor<f32>
    train.set @step, %t1 : tensor<f32>
    // CHECK-NEXT: train.set @step, %t1 : tensor<f32>
    %half = train.constant dense<[0.5, 0.25]> : tensor<2xf32>
    // CHECK-NEXT: %half = train.constant dense<[5.000000e-01, 2.500000e-01]> : tensor<2xf32>
    %m = train.get @bn.mean : tensor<8xf32>
    // CHECK-NEXT: %m = train.get @bn.mean : tensor<8xf32>
    %m2 = train.slice %m {axes = [0], starts = [0], ends = [2], steps = [1]} : (tensor<8xf32>) -> tensor<2xf32>
    // CHECK-NEXT: %m2 = train.slice %m {axes = [0], starts = [0], ends = [2], steps = [1]} : (tensor<8xf32>) -> tensor<2xf32>
    %m3 = train.mul %m2, %half : tensor<2xf32>
    // CHECK-NEXT: %m3 = train.mul %m2, %half : tensor<2xf32>
    train.set_slice @bn.mean, %m3 {axis = 0, start = 2} : tensor<2xf32>
    // CHECK-NEXT: train.set_slice @bn.mean, %m3 {axis = 0, start = 2} : tensor<2xf32>
    func.return %ce, %mse : tensor<f32>, tensor<f32>
    // CHECK-NEXT: func.return %ce, %mse : tensor<f32>, tensor<f32>
  }
  // CHECK-NEXT: }
}
// CHECK-NEXT: }

// The generic form spells every property, defaults included; -inf stays a bit pattern.
// GENERIC: %y = "train.conv2d"(%x, %w) <{stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64}>
// GENERIC: %ninf = "train.constant"() <{value = dense<0xff800000> : tensor<f32>}> : () -> tensor<f32>
// GENERIC: %21 = "train.clamp"(%20) <{max = 5.000000e-01 : f64, min = 0xfff0000000000000 : f64}>
// GENERIC: "train.set_slice"(%m3) <{param = @bn.mean, axis = 0 : i64, start = 2 : i64}> : (tensor<2xf32>) -> ()
