/**
 * What evaluation needs from a model: the log-likelihood of a continuation after a context, and the log-probabilities of
 * a few candidate tokens at the next position. The model side (a forward pass on some backend) implements this; the
 * task code in eval/tasks/ only builds token ids and reads numbers back.
 */

/**
 * Token ids. `context` is never empty (an empty text context becomes [BOS] or [EOS] before it gets here).
 * `continuation` can be empty in joint encoding, when the whole text encodes to no more tokens than the context
 * alone (merges across the boundary); its log-likelihood is then 0, as in lm-eval.
 */
export interface LoglikelihoodRequest {
  context: number[];
  continuation: number[];
}

export interface Scorer {
  /**
   * Sum of log P(continuation tokens | context) for each request, in order. The model input is
   * `(context + continuation)[:-1]`, whose length is at most `maxContext` (callers truncate the context on the left).
   * Requests sharing a context come together (consecutive), so an implementation may reuse the context's KV cache.
   */
  loglikelihood(reqs: LoglikelihoodRequest[]): Promise<number[]>;
  /** Log-probabilities (log-softmax over the whole vocabulary) of the candidate token ids at the position after `context`. */
  nextTokenLogprobs(context: number[], candidates: number[]): Promise<number[]>;
  /** The longest input sequence the model accepts (tokens). */
  readonly maxContext: number;
}
