/**
 * lowbit's quantized checkpoint: a Hugging Face folder in the GPTQ (AutoGPTQ/GPTQModel v1) layout.
 *   config.json            LlamaForCausalLM config + `quantization_config` (quant_method "gptq")
 *   quantize_config.json   {bits, group_size, damp_percent, desc_act, sym, true_sequential, ...}
 *   model.safetensors      per linear layer `<name>.qweight/.qzeros/.scales/.g_idx` (and
 *                          `<name>.qzeros_float` when quantization_config says lowbit_float_zeros:
 *                          QA-LoRA's merge, floatZeros.ts); embeddings, norms and the LM head in
 *                          their stored dtype
 *   lowbit_quant.json      every setting, the calibration source and windows, per-layer errors
 *   tokenizer              tokenizer.json (+ config), tokenizer.spm.json (from GGUF) or tok*.bin
 */
export const QUANT_CONFIG = 'quantize_config.json';
export const QUANT_REPORT = 'lowbit_quant.json';
export const SPM_TOKENIZER = 'tokenizer.spm.json';
