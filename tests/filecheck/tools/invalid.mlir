// RUN: pock-opt %s --split-input-file --verify-diagnostics
// RUN: not pock-opt %s --split-input-file 2>&1 | filecheck %s

builtin.module {
  func.func @f(%x : tensor<8x16xf32>, %w : tensor<4x32xf32>) -> tensor<8x4xf32> {
    // expected-error @+1 {{train.linear: input 8x16 does not fit weight 4x32}}
    %y = train.linear %x, %w : (tensor<8x16xf32>, tensor<4x32xf32>) -> tensor<8x4xf32>
    func.return %y : tensor<8x4xf32>
  }
}
// CHECK: invalid.mlir:7:5: error: train.linear: input 8x16 does not fit weight 4x32

// -----

builtin.module {
  %x = train.frobnicate : tensor<2xf32>  // expected-error {{unknown op 'train.frobnicate'}}
}
// CHECK: invalid.mlir:16:25: error: unknown op 'train.frobnicate'

// -----

builtin.module {
  %x = "train.relu" : tensor<2xf32>  // expected-error {{expected}}
}
// CHECK: invalid.mlir:23:21: error: '(' expected
