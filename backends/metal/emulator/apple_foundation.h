/* The subset of Apple's Foundation that backends/metal/metal_host.mm uses, declared as in
   Apple's SDK headers (NSObject.h, NSString.h, NSURL.h, NSBundle.h, NSError.h,
   NSPathUtilities.h), so that clang can type-check the host as Objective-C++ (ARC) where no
   Apple SDK exists: each message the host sends must match a declared selector with these
   argument and result types. Declarations only: nothing here runs. Installed by the test as
   <Foundation/Foundation.h>; anything outside this subset fails to compile: add it with its
   documented signature. */
#ifndef POCK_FOUNDATION_SHIM
#define POCK_FOUNDATION_SHIM
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef unsigned long NSUInteger;
typedef long NSInteger;
typedef signed char BOOL;
#define nil ((id)0)
#define NS_ENUM(type, name) enum name : type name; enum name : type
#define NS_OPTIONS(type, name) type name; enum : type
#define NS_ASSUME_NONNULL_BEGIN _Pragma("clang assume_nonnull begin")
#define NS_ASSUME_NONNULL_END _Pragma("clang assume_nonnull end")

NS_ASSUME_NONNULL_BEGIN

@protocol NSObject
@end

__attribute__((objc_root_class))
@interface NSObject <NSObject>
+ (instancetype)alloc;
- (instancetype)init;
@end

@interface NSString : NSObject
+ (nullable instancetype)stringWithUTF8String:(const char *)nullTerminatedCString;
@property (readonly) const char *UTF8String;
@property (readonly, copy) NSString *stringByDeletingLastPathComponent;
- (NSString *)stringByAppendingPathComponent:(NSString *)str;
@end

/* the class of @"..." literals */
@interface NSConstantString : NSString
@end

@interface NSURL : NSObject
+ (NSURL *)fileURLWithPath:(NSString *)path;
@end

@interface NSBundle : NSObject
@property (class, readonly, strong) NSBundle *mainBundle;
@property (nullable, readonly, copy) NSString *executablePath;
@end

@interface NSError : NSObject
@property (readonly, copy) NSString *localizedDescription;
@end
NS_ASSUME_NONNULL_END
#endif
