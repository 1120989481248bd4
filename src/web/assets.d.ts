/** The web bundle inlines a .wasm file as its bytes (esbuild's binary loader, scripts/build-web.mjs). */
declare module '*.wasm' {
  const bytes: Uint8Array;
  export default bytes;
}
