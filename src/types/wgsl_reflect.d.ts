// The package's Node entry is CommonJS behind "type": "module" and fails to load, so the ESM build
// is imported by path; this gives that path the package's own types.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
