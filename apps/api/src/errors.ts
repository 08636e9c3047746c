import { CodedError } from '@cachefleet/config';

/** Coded errors of the API pod; the README's table is checked against this one. */
export const API_ERROR_CODES = {
  E_API_CONFIG:
    'an API setting is invalid or missing (the message names the variable); the pod does not start',
  E_API_EDGE_OPTIONS: 'edgeCaching() was given bad options (the message names the field)',
  E_API_ROLLOUT_CONFIG:
    'CACHE_ROLLOUT / CACHE_ROLLOUT_ANONYMOUS, or the options of createRollout(), are invalid (the message names the variable or field)',
} as const;

export type ApiErrorCode = keyof typeof API_ERROR_CODES;

export class ApiError extends CodedError<ApiErrorCode> {}
