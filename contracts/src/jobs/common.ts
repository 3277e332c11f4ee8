import { registerDecorator, type ValidationArguments, type ValidationOptions } from 'class-validator';

/** A media reference is an http(s) URL or a storage key such as `uploads/abc/clip.mp4`. */
export const MEDIA_REF_PATTERN = /^(https?:\/\/[^\s]+|(?!\/)(?!.*\.\.)[A-Za-z0-9._\-/]+)$/;
export const MEDIA_REF_MESSAGE = '$property must be an http(s) URL or a storage key (letters, digits, . _ - /; no leading / or ..)';
/** Avatar ids become storage prefixes (`avatars/{avatarId}/`), so they are restricted to a safe alphabet. */
export const AVATAR_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const AVATAR_ID_MESSAGE = '$property must be 1-64 characters of letters, digits, _ and -, starting with a letter or digit';

/** Fails when both this property and `other` are set: for inputs that take one source or the other. */
export function ExclusiveWith(other: string, options?: ValidationOptions) {
  return (target: object, propertyName: string) =>
    registerDecorator({
      name: 'exclusiveWith',
      target: target.constructor,
      propertyName,
      constraints: [other],
      options: { message: `give $property or ${other}, not both`, ...options },
      validator: {
        validate(value: unknown, args: ValidationArguments) {
          return value === undefined || (args.object as Record<string, unknown>)[other] === undefined;
        },
      },
    });
}
