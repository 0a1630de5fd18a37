/**
 * The pattern decision table (DESIGN.md): three questions, one pattern, with the reasons.
 *
 * | immediate response? | finishes in seconds? | needs rerun? | pattern      |
 * |---------------------|----------------------|--------------|--------------|
 * | no                  | –                    | –            | async        |
 * | yes                 | no                   | –            | sync → async |
 * | yes                 | yes                  | yes          | sync → async |
 * | yes                 | yes                  | no           | sync         |
 */
export type Pattern = 'sync' | 'async' | 'sync-to-async';

export interface DecisionQuestions {
  /** Does the caller need an immediate response? */
  immediateResponse: boolean;
  /** Will everything finish in seconds? */
  finishesInSeconds: boolean;
  /** Must a failure be retried or rerun later? */
  needsRerun: boolean;
}

export interface Decision {
  pattern: Pattern;
  reasons: string[];
}

/**
 * Chooses the pattern for an integration from the three questions.
 *
 * @example
 * decide({ immediateResponse: true, finishesInSeconds: true, needsRerun: true });
 * // → { pattern: 'sync-to-async', reasons: [...] }
 */
export function decide(answers: DecisionQuestions): Decision {
  if (!answers.immediateResponse) {
    return {
      pattern: 'async',
      reasons: [
        'The caller does not need an immediate response: accept the request durably, answer 202, and do the work in the background with retries.',
      ],
    };
  }
  if (!answers.finishesInSeconds) {
    return {
      pattern: 'sync-to-async',
      reasons: [
        'The caller needs an immediate response, but the work does not finish in seconds: answer at once with what is known (e.g. a confirmation number) and hand the long work off to an async integration.',
      ],
    };
  }
  if (answers.needsRerun) {
    return {
      pattern: 'sync-to-async',
      reasons: [
        'The caller needs an immediate response and the work finishes in seconds, but a failure must be retried or rerun later: a sync instance is never rerun, so hand the part that must not be lost off to an async integration.',
      ],
    };
  }
  return {
    pattern: 'sync',
    reasons: [
      'The caller needs an immediate response, the work finishes in seconds, and a failure needs no rerun (the answer is time-sensitive): run it inline with a deadline and answer with a clear fault on failure.',
    ],
  };
}
