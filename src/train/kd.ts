import { F, type Tensor } from '../engine/index.js';

export interface KDOptions {
  /** Softmax temperature (Hinton); 4 in the DeepReDuce/SNL recipes. */
  temperature: number;
  /** Weight of the soft-target term; (1 - lambda) weighs the cross-entropy. */
  lambda: number;
  labelSmoothing?: number;
}

/**
 * Knowledge-distillation loss: (1 - lambda) * CE(s, y) + lambda * T^2 * KL(p_t || p_s), with
 * p = softmax(logits / T) and the KL averaged over the batch — torch's
 * kl_div(log_softmax(s/T), softmax(t/T), 'batchmean'), the form used by Hinton et al. and SNL.
 */
export function kdLoss(student: Tensor, teacher: Tensor, target: Tensor, o: KDOptions): Tensor {
  const T = o.temperature;
  const ce = F.crossEntropy(student, target, { labelSmoothing: o.labelSmoothing ?? 0 });
  const soft = F.klDiv(student.div(T).logSoftmax(1), teacher.div(T).softmax(1), 'batchmean');
  return ce.mul(1 - o.lambda).add(soft.mul(o.lambda * T * T));
}
