// Canonicalization patterns of the train dialect, run by xDSL's stock `canonicalize` pass.
// RUN: pock-opt %s -p canonicalize | filecheck %s

// Elementwise ops on constants fold, by the interpreter's semantics (ir/interpreter/elementwise.py).
// CHECK-LABEL: func.func @fold_scalars() -> (tensor<f32>, tensor<3xi1>, tensor<2xf32>) {
// CHECK-NEXT:    %e = train.constant dense<9.38905525> : tensor<f32>
// CHECK-NEXT:    %m = train.constant dense<[true, false, false]> : tensor<3xi1>
// CHECK-NEXT:    %inf = train.constant dense<[0x7f800000, 0xff800000]> : tensor<2xf32>
// CHECK-NEXT:    func.return %e, %m, %inf : tensor<f32>, tensor<3xi1>, tensor<2xf32>
func.func @fold_scalars() -> (tensor<f32>, tensor<3xi1>, tensor<2xf32>) {
  %two = train.constant dense<2.0> : tensor<f32>
  %v = train.constant dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
  %x = train.exp %two : tensor<f32>
  %e = train.add %x, %two : tensor<f32>
  %m = train.lt %v, %two : (tensor<3xf32>, tensor<f32>) -> tensor<3xi1>
  %pm = train.constant dense<[1.0, -1.0]> : tensor<2xf32>
  %zero = train.constant dense<0.0> : tensor<f32>
  %inf = train.div %pm, %zero : (tensor<2xf32>, tensor<f32>) -> tensor<2xf32>
  func.return %e, %m, %inf : tensor<f32>, tensor<3xi1>, tensor<2xf32>
}

// where, cast and attribute-carrying ops (gelu, clamp) fold too; an op with a non-constant
// operand stays.
// CHECK-LABEL: func.func @fold_mixed(%x: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xi64>, tensor<2xf32>) {
// CHECK-NEXT:    %w = train.constant dense<[1.000000e+00, 5.000000e-01]> : tensor<2xf32>
// CHECK-NEXT:    %i = train.constant dense<[1, 0]> : tensor<2xi64>
// CHECK-NEXT:    %c = train.constant dense<[0.841344714, 5.000000e-01]> : tensor<2xf32>
// CHECK-NEXT:    %y = train.mul %x, %c : tensor<2xf32>
// CHECK-NEXT:    func.return %w, %i, %y
func.func @fold_mixed(%x : tensor<2xf32>) -> (tensor<2xf32>, tensor<2xi64>, tensor<2xf32>) {
  %mask = train.constant dense<[true, false]> : tensor<2xi1>
  %one = train.constant dense<1.0> : tensor<f32>
  %half = train.constant dense<[3.0, 0.5]> : tensor<2xf32>
  %w = train.where %mask, %one, %half : (tensor<2xi1>, tensor<f32>, tensor<2xf32>) -> tensor<2xf32>
  %i = train.cast %mask {to = "i64"} : (tensor<2xi1>) -> tensor<2xi64>
  %g = train.gelu %w : tensor<2xf32>
  %c = train.clamp %g {min = 0.5} : tensor<2xf32>
  %y = train.mul %x, %c : tensor<2xf32>
  func.return %w, %i, %y : tensor<2xf32>, tensor<2xi64>, tensor<2xf32>
}

// Chains of reshapes collapse to one; a reshape to the same shape disappears.
// CHECK-LABEL: func.func @reshapes(%x: tensor<2x3x4xf32>) -> (tensor<4x6xf32>, tensor<2x3x4xf32>) {
// CHECK-NEXT:    %c = train.reshape %x {shape = [4, 6]} : (tensor<2x3x4xf32>) -> tensor<4x6xf32>
// CHECK-NEXT:    func.return %c, %x : tensor<4x6xf32>, tensor<2x3x4xf32>
func.func @reshapes(%x : tensor<2x3x4xf32>) -> (tensor<4x6xf32>, tensor<2x3x4xf32>) {
  %a = train.reshape %x {shape = [6, 4]} : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  %b = train.reshape %a {shape = [24]} : (tensor<6x4xf32>) -> tensor<24xf32>
  %c = train.reshape %b {shape = [4, 6]} : (tensor<24xf32>) -> tensor<4x6xf32>
  %d = train.reshape %b {shape = [2, 3, 4]} : (tensor<24xf32>) -> tensor<2x3x4xf32>
  func.return %c, %d : tensor<4x6xf32>, tensor<2x3x4xf32>
}

// Transposes compose (c[j] = p1[p2[j]]); identity permutations disappear.
// CHECK-LABEL: func.func @transposes(%x: tensor<2x3x4xf32>) -> (tensor<2x3x4xf32>, tensor<4x2x3xf32>, tensor<3x2x4xf32>) {
// CHECK-NEXT:    %f = train.transpose %x {perm = [2, 0, 1]} : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
// CHECK-NEXT:    %h = train.transpose %x {perm = [1, 0, 2]} : (tensor<2x3x4xf32>) -> tensor<3x2x4xf32>
// CHECK-NEXT:    func.return %x, %f, %h
func.func @transposes(%x : tensor<2x3x4xf32>) -> (tensor<2x3x4xf32>, tensor<4x2x3xf32>, tensor<3x2x4xf32>) {
  %d = train.transpose %x {perm = [1, 2, 0]} : (tensor<2x3x4xf32>) -> tensor<3x4x2xf32>
  %e = train.transpose %d {perm = [2, 0, 1]} : (tensor<3x4x2xf32>) -> tensor<2x3x4xf32>
  %f = train.transpose %e {perm = [2, 0, 1]} : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
  %g = train.transpose %x {perm = [0, 1, 2]} : tensor<2x3x4xf32>
  %h0 = train.transpose %g {perm = [0, 2, 1]} : (tensor<2x3x4xf32>) -> tensor<2x4x3xf32>
  %h = train.transpose %h0 {perm = [2, 0, 1]} : (tensor<2x4x3xf32>) -> tensor<3x2x4xf32>
  func.return %e, %f, %h : tensor<2x3x4xf32>, tensor<4x2x3xf32>, tensor<3x2x4xf32>
}

// A broadcast to the operand's shape disappears; broadcasts of broadcasts compose.
// CHECK-LABEL: func.func @broadcasts(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<4x2x3xf32>) {
// CHECK-NEXT:    %b = train.broadcast %x {shape = [4, 2, 3]} : (tensor<3xf32>) -> tensor<4x2x3xf32>
// CHECK-NEXT:    func.return %x, %b : tensor<3xf32>, tensor<4x2x3xf32>
func.func @broadcasts(%x : tensor<3xf32>) -> (tensor<3xf32>, tensor<4x2x3xf32>) {
  %s = train.broadcast %x {shape = [3]} : tensor<3xf32>
  %a = train.broadcast %s {shape = [2, 3]} : (tensor<3xf32>) -> tensor<2x3xf32>
  %b = train.broadcast %a {shape = [4, 2, 3]} : (tensor<2x3xf32>) -> tensor<4x2x3xf32>
  func.return %s, %b : tensor<3xf32>, tensor<4x2x3xf32>
}

// Nothing to do: ops on arguments and effects stay as they are.
// CHECK-LABEL: func.func @untouched(%x: tensor<2x3xf32>) -> tensor<3x2xf32> {
// CHECK-NEXT:    %t = train.transpose %x {perm = [1, 0]} : (tensor<2x3xf32>) -> tensor<3x2xf32>
// CHECK-NEXT:    %r = train.relu %t : tensor<3x2xf32>
// CHECK-NEXT:    func.return %r : tensor<3x2xf32>
func.func @untouched(%x : tensor<2x3xf32>) -> tensor<3x2xf32> {
  %t = train.transpose %x {perm = [1, 0]} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  %r = train.relu %t : tensor<3x2xf32>
  func.return %r : tensor<3x2xf32>
}
